"""The embedded queue of `newsmon run`: named durable queues in one SQLite file, in place
of Kafka topics.

A record sits in its queue (`raw`, `enriched`, `alerts`) until the stage that takes it
has published what it became; then it is removed. Publishing and removing are two
transactions, as on Kafka a publish and a commit are two steps: a `kill -9` between
them reads the record again (at least once), and the next stage's ledger drops the
copy. A key already waiting in a queue is not queued twice. Records that cannot be
handled go to `dead_letter` with the error, as on Kafka.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.corridor.records import Message
from pipeline.storage import connect, immediate

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

Keyed = tuple[str, bytes]


@dataclass(frozen=True)
class DeadLetter:
    name: str
    key: str
    payload: bytes
    reason: str
    error: str


class LocalQueue:
    """Named durable queues in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()
        self.arrived = threading.Event()
        """Set whenever records are queued: an idle reader waits on it."""

    def put(self, name: str, records: Iterable[Keyed]) -> None:
        """Enqueue records; a key already waiting in that queue is not queued twice."""
        self.publish({name: list(records)}, [])

    def publish(self, queued: Mapping[str, Sequence[Keyed]], dead: Sequence[DeadLetter]) -> None:
        """Enqueue records on several queues and write dead letters, atomically."""
        now = time.time()
        with self._lock, immediate(self._db):
            for name, records in queued.items():
                self._db.executemany(
                    "INSERT OR IGNORE INTO queue (name, key, payload, enqueued)"
                    " VALUES (?, ?, ?, ?)",
                    [(name, key, payload, now) for key, payload in records],
                )
            self._db.executemany(
                "INSERT INTO dead_letter (name, key, payload, reason, error, failed)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(d.name, d.key, d.payload, d.reason, d.error[:4000], now) for d in dead],
            )
        self.arrived.set()

    def take(self, name: str, limit: int, *, after: int = 0) -> list[Message]:
        """The oldest records of a queue past sequence number `after` (those before are in
        hand), left in place until `remove`: as a stage sees them on Kafka, with the
        sequence number as the offset on partition 0 of a topic named after the queue."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, key, payload FROM queue WHERE name = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (name, after, limit),
            ).fetchall()
        return [Message(name, 0, seq, key.encode(), bytes(payload)) for seq, key, payload in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        """Records settled: they are never handed out again."""
        with self._lock, immediate(self._db):
            self._db.executemany("DELETE FROM queue WHERE seq = ?", [(s,) for s in seqs])

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
