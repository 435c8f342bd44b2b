"""The rules stage's memory: which alerts were raised, held or published. SQLite.

One row per (rule, story) that ever fired, so an alert is raised once per rule
and story however often the story comes back, across restarts. A row starts
`pending` when its alert is handed to the corridor and becomes `published`
once the broker acknowledged it (the Kafka runner says so after each record,
and reading resuming past a record says so after a restart; the one-process
mode says so after delivery). A pending row met again re-publishes the very
same alert (same `alert_id`): after a kill -9 between the broker's
acknowledgement and the confirmation, the record comes back and its alert goes
out again rather than being lost.

Other states: `held` (throttled, waiting for its rule's digest), `digested`
(sent in a digest), `duplicate` (a near-duplicate of a story that already
alerted). MinHash signatures of alerted stories live here too, for the
near-duplicate index to be rebuilt at start-up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import Retryable
from pipeline.storage import connect, immediate

log = logging.getLogger(__name__)

AlertState = Literal["pending", "published", "held", "digested", "duplicate"]
MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    rule_id TEXT NOT NULL,
    story_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    state TEXT NOT NULL,
    raised_at REAL NOT NULL,
    window_start REAL,
    source_topic TEXT,
    source_partition INTEGER,
    source_offset INTEGER,
    payload BLOB,
    PRIMARY KEY (rule_id, story_id)
);
CREATE INDEX IF NOT EXISTS alerts_pending ON alerts (state, source_topic, source_partition);
CREATE TABLE IF NOT EXISTS throttle (
    rule_id TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    sent INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS signatures (
    story_id TEXT PRIMARY KEY,
    seen_at REAL NOT NULL,
    hashvalues BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class SourcePosition:
    """Where the story that produced an alert was read from (Kafka mode)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class StoredAlert:
    rule_id: str
    story_id: str
    alert_id: str
    state: AlertState
    payload: bytes | None


@dataclass(frozen=True)
class HeldGroup:
    """The throttled alerts of one rule in one window: the makings of a digest."""

    rule_id: str
    window_start: float
    payloads: list[bytes]


class AlertStore:
    """SQLite under the state dir; `:memory:` for `newsmon match` and tests."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = connect(path, _SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One story's decisions land together or not at all; a failing disk is retryable."""
        with self._lock:
            try:
                with immediate(self._db):
                    yield
            except sqlite3.Error as exc:
                raise Retryable(f"rules state store {self.path}: {exc}", reason="state") from exc

    def get(self, rule_id: str, story_id: str) -> StoredAlert | None:
        row = self._db.execute(
            "SELECT rule_id, story_id, alert_id, state, payload FROM alerts"
            " WHERE rule_id = ? AND story_id = ?",
            (rule_id, story_id),
        ).fetchone()
        return StoredAlert(*row) if row else None

    def fired_for_any(self, rule_id: str, story_ids: Sequence[str]) -> bool:
        """Did the rule already fire (in any state) for one of these stories?"""
        if not story_ids:
            return False
        marks = ",".join("?" * len(story_ids))
        row = self._db.execute(
            f"SELECT 1 FROM alerts WHERE rule_id = ? AND story_id IN ({marks}) LIMIT 1",
            (rule_id, *story_ids),
        ).fetchone()
        return row is not None

    def put(
        self,
        stored: StoredAlert,
        raised_at: float,
        position: SourcePosition | None = None,
        window_start: float | None = None,
    ) -> None:
        topic, partition, offset = (
            (position.topic, position.partition, position.offset) if position else (None,) * 3
        )
        self._db.execute(
            "INSERT OR REPLACE INTO alerts (rule_id, story_id, alert_id, state, raised_at,"
            " window_start, source_topic, source_partition, source_offset, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored.rule_id, stored.story_id, stored.alert_id, stored.state, raised_at,
                window_start, topic, partition, offset, stored.payload,
            ),
        )  # fmt: skip

    def confirm_before(self, topic: str, partition: int, offset: int) -> int:
        """Alerts of records before `offset` were published: forget their bytes."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE alerts SET state = 'published', payload = NULL WHERE state = 'pending'"
                " AND source_topic = ? AND source_partition = ? AND source_offset < ?",
                (topic, partition, offset),
            )
            return cursor.rowcount

    def confirm_all(self) -> int:
        """Every pending alert has been handed on (the one-process mode, after delivery)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE alerts SET state = 'published', payload = NULL WHERE state = 'pending'"
            )
            return cursor.rowcount

    # -- throttling ------------------------------------------------------------------

    def admit(self, rule_id: str, now: float, limit: int, window: float) -> float | None:
        """Count one alert against its rule's window; the window start if it is over the limit."""
        row = self._db.execute(
            "SELECT window_start, sent FROM throttle WHERE rule_id = ?", (rule_id,)
        ).fetchone()
        if row is None or now >= row[0] + window:
            self._db.execute("INSERT OR REPLACE INTO throttle VALUES (?, ?, 1)", (rule_id, now))
            return None
        if row[1] < limit:
            self._db.execute("UPDATE throttle SET sent = sent + 1 WHERE rule_id = ?", (rule_id,))
            return None
        start: float = row[0]
        return start

    def held_due(self, now: float, window: float) -> list[HeldGroup]:
        """Held alerts whose window has closed, grouped per rule and window, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rule_id, window_start, payload FROM alerts WHERE state = 'held'"
                " AND window_start + ? <= ? ORDER BY rule_id, window_start, rowid",
                (window, now),
            ).fetchall()
        groups: dict[tuple[str, float], HeldGroup] = {}
        for rule_id, start, payload in rows:
            group = groups.setdefault((rule_id, start), HeldGroup(rule_id, start, []))
            group.payloads.append(payload)
        return list(groups.values())

    def mark_digested(self, rule_id: str, window_start: float) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE alerts SET state = 'digested', payload = NULL"
                " WHERE state = 'held' AND rule_id = ? AND window_start = ?",
                (rule_id, window_start),
            )

    # -- near-duplicate signatures -----------------------------------------------------

    def put_signature(self, story_id: str, seen_at: float, hashvalues: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)", (story_id, seen_at, hashvalues)
        )

    def signatures_since(self, since: float) -> list[tuple[str, float, bytes]]:
        with self._lock:
            return self._db.execute(
                "SELECT story_id, seen_at, hashvalues FROM signatures WHERE seen_at >= ?", (since,)
            ).fetchall()

    def forget_signatures_before(self, before: float) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM signatures WHERE seen_at < ?", (before,)).rowcount

    def count(self, state: AlertState) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM alerts WHERE state = ?", (state,))
            found: int = row.fetchone()[0]
            return found

    def close(self) -> None:
        with self._lock:
            self._db.close()
