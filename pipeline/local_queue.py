"""The one-process corridor: a durable SQLite queue between stages, in place of Kafka topics.

Each record sits in one queue (`raw`, `enriched`) until the stage that takes it has
produced what follows; `advance` removes it and enqueues the outputs in one
transaction, so a `kill -9` leaves every record either before or after its stage,
never lost and never in both. Records that cannot be handled go to `dead_letter`
with the error, as on Kafka.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued REAL NOT NULL,
    UNIQUE (name, key)
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    failed REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Queued:
    seq: int
    key: str
    payload: bytes


@dataclass(frozen=True)
class DeadLetter:
    name: str
    key: str
    payload: bytes
    reason: str
    error: str


class LocalQueue:
    """Named durable queues in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def put(self, name: str, records: Iterable[tuple[str, bytes]]) -> None:
        """Enqueue records; a key already waiting in that queue is not queued twice."""
        with self._lock, self._transaction():
            self._insert(name, records)

    def take(self, name: str, limit: int, *, after: int = 0) -> list[Queued]:
        """The oldest records of a queue past sequence number `after` (those before are in
        hand), left in place until `advance` or `dead_letter`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, key, payload FROM queue WHERE name = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (name, after, limit),
            ).fetchall()
        return [Queued(seq, key, bytes(payload)) for seq, key, payload in rows]

    def advance(
        self,
        name: str,
        done: Sequence[Queued],
        to: str | None,
        outputs: Iterable[tuple[str, bytes]],
    ) -> None:
        """Remove `done` from `name` and enqueue `outputs` on `to`, atomically."""
        with self._lock, self._transaction():
            self._delete(done)
            if to is not None:
                self._insert(to, outputs)

    def dead_letter(self, name: str, record: Queued, reason: str, error: str) -> None:
        with self._lock, self._transaction():
            self._delete([record])
            self._db.execute(
                "INSERT INTO dead_letter (name, key, payload, reason, error, failed)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, record.key, record.payload, reason, error[:4000], time.time()),
            )

    def pending(self, name: str) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM queue WHERE name = ?", (name,)
            ).fetchone()
        return int(count)

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, key, payload, reason, error FROM dead_letter ORDER BY seq"
            ).fetchall()
        return [DeadLetter(n, k, bytes(p), r, e) for n, k, p, r, e in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _insert(self, name: str, records: Iterable[tuple[str, bytes]]) -> None:
        now = time.time()
        self._db.executemany(
            "INSERT OR IGNORE INTO queue (name, key, payload, enqueued) VALUES (?, ?, ?, ?)",
            [(name, key, payload, now) for key, payload in records],
        )

    def _delete(self, records: Sequence[Queued]) -> None:
        self._db.executemany("DELETE FROM queue WHERE seq = ?", [(r.seq,) for r in records])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
