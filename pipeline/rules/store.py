"""The rules stage's memory: which alerts were raised, held or published. SQLite, per
partition, mirrored to a changelog (`pipeline/corridor/state/`).

One row per (rule, story) that ever fired, so an alert is raised once per rule
and story however often the story comes back, across restarts and replicas. A row starts
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
near-duplicate index to be rebuilt at start-up and after a restore, and the spike
rules' counts (`spike_store.py`).

On Kafka every row belongs to the partition of the candidate-alerts topic its
rule is keyed to (`part`), so one replica owns a rule's whole history; the
rows live in the `rules.state` changelog and the file is only a cache, wiped
and replayed when a partition is assigned. In `newsmon run` everything is
partition 0 and the file is the truth.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.corridor.state import Changelog, NoChangelog, PartitionTables, Table
from pipeline.metrics import Metrics
from pipeline.rules import spike_store
from pipeline.rules.spike_store import SpikeStore
from pipeline.storage import connect

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
    part INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, story_id)
);
CREATE INDEX IF NOT EXISTS alerts_pending ON alerts (state, source_topic, source_partition);
CREATE TABLE IF NOT EXISTS throttle (
    rule_id TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    sent INTEGER NOT NULL,
    part INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS story_signatures (
    part INTEGER NOT NULL,
    story_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    hashvalues BLOB NOT NULL,
    PRIMARY KEY (part, story_id)
);
"""

_MIGRATIONS = (
    # files written before the state was kept per partition: all of it is partition 0
    ("alerts", "ALTER TABLE alerts ADD COLUMN part INTEGER NOT NULL DEFAULT 0"),
    ("throttle", "ALTER TABLE throttle ADD COLUMN part INTEGER NOT NULL DEFAULT 0"),
)

ALERTS = Table(
    "alerts",
    key=("rule_id", "story_id"),
    values=("alert_id", "state", "raised_at", "window_start", "source_topic",
            "source_partition", "source_offset", "payload"),
    blobs=frozenset({"payload"}),
)  # fmt: skip
THROTTLE = Table("throttle", key=("rule_id",), values=("window_start", "sent"))
SIGNATURES = Table(
    "story_signatures", key=("story_id",), values=("seen_at", "hashvalues"),
    blobs=frozenset({"hashvalues"}),
)  # fmt: skip


def _open(path: Path | str) -> sqlite3.Connection:
    db = connect(path)
    for table, alter in _MIGRATIONS:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if columns and "part" not in columns:
            db.execute(alter)
    db.executescript(_SCHEMA)
    db.executescript(spike_store.SCHEMA)
    old = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "signatures" in old:
        db.execute(
            "INSERT OR IGNORE INTO story_signatures SELECT 0, story_id, seen_at, hashvalues"
            " FROM signatures"
        )
        db.execute("DROP TABLE signatures")
    return db


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
    part: int = 0


class AlertStore:
    """SQLite under the state dir (`:memory:` for `newsmon match` and tests), with a
    changelog on Kafka."""

    def __init__(
        self, path: Path | str, changelog: Changelog | None = None, metrics: Metrics | None = None
    ) -> None:
        self.path = str(path)
        self.tables = PartitionTables(
            _open(path), (ALERTS, THROTTLE, SIGNATURES, *spike_store.TABLES),
            changelog or NoChangelog(), "rules", metrics,
        )  # fmt: skip
        self._db = self.tables.db
        self._lock = self.tables.lock
        self.spikes = SpikeStore(self.tables)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One story's decisions land together or not at all; a failing disk is retryable."""
        with self.tables.transaction():
            yield

    def flush(self) -> None:
        """Make the decisions durable in the changelog (before their alerts are published)."""
        self.tables.flush()

    def restore(self, partitions: Iterable[int]) -> int:
        return self.tables.restore(partitions)

    def drop(self, partitions: Iterable[int]) -> None:
        self.tables.drop(partitions)

    def release(self, partitions: Iterable[int]) -> None:
        """Partitions moved away: kept as a cache, no longer acted on."""
        self.tables.release(partitions)

    def get(self, rule_id: str, story_id: str) -> StoredAlert | None:
        with self._lock:
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
        with self._lock:
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
        """Record a decision (inside `transaction()`); its partition is its source's."""
        topic, partition, offset = (
            (position.topic, position.partition, position.offset) if position else (None,) * 3
        )
        row = {
            "rule_id": stored.rule_id, "story_id": stored.story_id, "alert_id": stored.alert_id,
            "state": stored.state, "raised_at": raised_at, "window_start": window_start,
            "source_topic": topic, "source_partition": partition, "source_offset": offset,
            "payload": stored.payload,
        }  # fmt: skip
        self.tables.upsert("alerts", partition or 0, row)

    def confirm_before(self, topic: str, partition: int, offset: int) -> int:
        """Alerts of records before `offset` were published: forget their bytes."""
        return self._publish_rows(
            "state = 'pending' AND source_topic = ? AND source_partition = ? AND source_offset < ?",
            (topic, partition, offset),
        )

    def confirm_all(self) -> int:
        """Every pending alert has been handed on (the one-process mode, after delivery)."""
        return self._publish_rows("state = 'pending'", ())

    def _publish_rows(self, where: str, params: Sequence[object]) -> int:
        with self.transaction():
            rows = self.tables.rows("alerts", where, params)
            for row in rows:
                self.tables.upsert(
                    "alerts", row["part"], {**row, "state": "published", "payload": None}
                )
        return len(rows)

    # -- throttling ------------------------------------------------------------------

    def admit(
        self, rule_id: str, now: float, limit: int, window: float, part: int = 0
    ) -> float | None:
        """Count one alert against its rule's window; the window start if it is over the
        limit. Inside `transaction()`."""
        row = self._db.execute(
            "SELECT window_start, sent FROM throttle WHERE rule_id = ?", (rule_id,)
        ).fetchone()
        if row is None or now >= row[0] + window:
            self.tables.upsert(
                "throttle", part, {"rule_id": rule_id, "window_start": now, "sent": 1}
            )
            return None
        start, sent = float(row[0]), int(row[1])
        if sent < limit:
            self.tables.upsert(
                "throttle", part, {"rule_id": rule_id, "window_start": start, "sent": sent + 1}
            )
            return None
        return start

    def held_due(self, now: float, window: float) -> list[HeldGroup]:
        """Held alerts whose window has closed, grouped per rule and window, oldest first."""
        owned, parts = self.tables.owned_clause()  # not the digests of another replica's rules
        with self._lock:
            rows = self._db.execute(
                "SELECT rule_id, window_start, payload, part FROM alerts WHERE state = 'held'"
                f" AND window_start + ? <= ? AND {owned} ORDER BY rule_id, window_start, rowid",
                (window, now, *parts),
            ).fetchall()
        groups: dict[tuple[str, float], HeldGroup] = {}
        for rule_id, start, payload, part in rows:
            group = groups.setdefault((rule_id, start), HeldGroup(rule_id, start, [], part))
            group.payloads.append(payload)
        return list(groups.values())

    def mark_digested(self, rule_id: str, window_start: float) -> None:
        with self.transaction():
            rows = self.tables.rows(
                "alerts", "state = 'held' AND rule_id = ? AND window_start = ?",
                (rule_id, window_start),
            )  # fmt: skip
            for row in rows:
                self.tables.upsert(
                    "alerts", row["part"], {**row, "state": "digested", "payload": None}
                )

    # -- near-duplicate signatures -----------------------------------------------------

    def put_signature(
        self, story_id: str, seen_at: float, hashvalues: bytes, part: int = 0
    ) -> None:
        """Inside `transaction()`."""
        row = {"story_id": story_id, "seen_at": seen_at, "hashvalues": hashvalues}
        self.tables.upsert("story_signatures", part, row)

    def signatures_since(self, since: float) -> list[tuple[str, float, bytes]]:
        with self._lock:
            return self._db.execute(
                "SELECT story_id, seen_at, hashvalues FROM story_signatures WHERE seen_at >= ?",
                (since,),
            ).fetchall()

    def forget_signatures_before(self, before: float) -> int:
        with self.transaction():
            rows = self.tables.rows("story_signatures", "seen_at < ?", (before,))
            for row in rows:
                self.tables.delete("story_signatures", row["part"], row)
        return len(rows)

    def count(self, state: AlertState) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM alerts WHERE state = ?", (state,))
            found: int = row.fetchone()[0]
            return found

    def close(self) -> None:
        self.tables.close()
