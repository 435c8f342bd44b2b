"""Which alerts each destination already has, so that an alert read again is not sent again.

An alert reaches the notifier a second time when a worker stopped between delivering
it and committing its offset (a kill, an OOM, a lost container), or when the rules
stage re-published it after a crash of its own (same `alert_id`). Kafka's at-least-once
reading is right for not losing alerts; this ledger turns it into exactly-once sending
for everything but the moment between the destination's answer and the ledger's write.

One SQLite file (WAL, synchronous=FULL) in the notifier's state directory, one row per
(alert id, destination) delivered, kept `retention` seconds (an alert is read again
within minutes of a crash; the default keeps two days).

On Kafka the file is only a cache: each row belongs to the partition its alert is
on (alerts and retry records are keyed by alert id, so both topics put an alert on
the same partition number), every write also goes to the compacted
`notifier.state` changelog and is acknowledged before the delivery counts as done,
and a replica that is assigned a partition (of either topic) replays that
partition's changelog first. So a replica that takes over after a kill or a
rebalance knows what the last owner delivered, on any host.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import NotifierSettings
from pipeline.corridor.state import Changelog, NoChangelog, PartitionTables, Table
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
from pipeline.storage import connect

log = logging.getLogger(__name__)

LEDGER_FILE = "delivered.sqlite3"
PRUNE_EVERY = 1000  # records between two sweeps of rows past retention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    alert_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    part INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (alert_id, destination)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (delivered_at);
"""
DELIVERED = Table("delivered", key=("alert_id", "destination"), values=("delivered_at",))
PartitionOf = Callable[[str], int]


def _open(path: Path) -> sqlite3.Connection:
    db = connect(path)
    columns = {row[1] for row in db.execute("PRAGMA table_info(delivered)")}
    if columns and "part" not in columns:  # a ledger written before it was kept per partition
        db.execute("ALTER TABLE delivered ADD COLUMN part INTEGER NOT NULL DEFAULT 0")
    db.executescript(_SCHEMA)
    return db


class DeliveredLedger:
    """Thread-safe: the destinations' lanes record from their own threads."""

    def __init__(
        self,
        path: Path,
        retention: float,
        changelog: Changelog | None = None,
        partition_of: PartitionOf = lambda _alert_id: 0,
    ) -> None:
        self.path = path
        self.retention = retention
        self.partition_of = partition_of
        self._since_prune = 0
        try:
            db = _open(path)
        except (OSError, sqlite3.Error) as exc:
            raise Retryable(f"delivery ledger {path}: {exc}", reason="state") from exc
        self._tables = PartitionTables(db, [DELIVERED], changelog or NoChangelog(), "notifier")
        self._lock = self._tables.lock
        self.prune(time.time())

    @contextmanager
    def _using(self) -> Iterator[None]:
        """Under the lock; a file or disk that fails raises `Retryable` (reason "state")."""
        try:
            with self._lock:
                yield
        except (OSError, sqlite3.Error) as exc:
            raise Retryable(f"delivery ledger {self.path}: {exc}", reason="state") from exc

    def use_changelog(
        self, changelog: Changelog, partition_of: PartitionOf, metrics: Metrics | None = None
    ) -> None:
        """Make the file a cache of `changelog` (Kafka); opened first, so that a state dir
        that cannot be written is reported before the broker is asked anything."""
        self._tables.changelog = changelog
        self.partition_of = partition_of
        if metrics is not None:
            self._tables.metrics = metrics
            metrics.declare_state_store(self._tables.name, list(self._tables.tables))

    def has(self, alert_id: str, destination: str) -> bool:
        with self._using():
            row = self._tables.db.execute(
                "SELECT 1 FROM delivered WHERE alert_id = ? AND destination = ?",
                (alert_id, destination),
            ).fetchone()
        return row is not None

    def record(self, alert_id: str, destination: str, at: float) -> None:
        """Raises `Retryable` if the disk or the changelog refuses; the delivery itself stands.

        Returns once the changelog has it: the next owner of the alert's partition
        will not send it again.
        """
        row = {"alert_id": alert_id, "destination": destination, "delivered_at": at}
        with self._using(), self._tables.transaction():
            self._tables.upsert("delivered", self.partition_of(alert_id), row)
            self._since_prune += 1
            due = self._since_prune >= PRUNE_EVERY
        self._tables.flush()
        if due:
            self.prune(at)

    def restore(self, partitions: Iterable[int]) -> int:
        """Partitions assigned (of the alerts or the retry topic): replay their deliveries."""
        replayed = self._tables.restore(partitions)
        log.info(
            "delivery ledger restored",
            extra={"stage": "notifier", "partition": sorted(set(partitions)), "records": replayed},
        )
        return replayed

    def prune(self, now: float) -> int:
        """Forget deliveries older than the retention; returns how many."""
        with self._using(), self._tables.transaction():
            self._since_prune = 0
            old = self._tables.rows("delivered", "delivered_at < ?", (now - self.retention,))
            for row in old:
                self._tables.delete("delivered", row["part"], row)
        self._tables.flush()
        return len(old)

    def __len__(self) -> int:
        with self._using():
            (count,) = self._tables.db.execute("SELECT COUNT(*) FROM delivered").fetchone()
        return int(count)

    def close(self) -> None:
        self._tables.close()


def open_ledger(state_dir: Path, settings: NotifierSettings) -> DeliveredLedger:
    """The ledger of a notifier (Kafka worker or `newsmon run`) whose state is in `state_dir`."""
    return DeliveredLedger(
        state_dir / "notifier" / LEDGER_FILE, settings.delivered_retention_seconds
    )
