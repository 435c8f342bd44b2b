"""Which alerts each destination already has, so that an alert read again is not sent again.

An alert reaches the notifier a second time when a worker stopped between delivering
it and committing its offset (a kill, an OOM, a lost container), or when the rules
stage re-published it after a crash of its own (same `alert_id`). Kafka's at-least-once
reading is right for not losing alerts; this ledger turns it into exactly-once sending
for everything but the moment between the destination's answer and the ledger's write.

One SQLite file (WAL, synchronous=FULL) in the notifier's state directory, one row per
(alert id, destination) delivered, kept `retention` seconds (an alert is read again
within minutes of a crash; the default keeps two days). Replicas that share a state
directory on one host share the ledger.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import NotifierSettings
from pipeline.errors import Retryable
from pipeline.storage import connect

LEDGER_FILE = "delivered.sqlite3"
PRUNE_EVERY = 1000  # records between two sweeps of rows past retention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    alert_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    PRIMARY KEY (alert_id, destination)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (delivered_at);
"""


class DeliveredLedger:
    """Thread-safe: the destinations' lanes record from their own threads."""

    def __init__(self, path: Path, retention: float) -> None:
        self.path = path
        self.retention = retention
        self._lock = threading.Lock()
        self._since_prune = 0
        with self._using():
            self._db = connect(path, _SCHEMA)
        self.prune(time.time())

    @contextmanager
    def _using(self) -> Iterator[None]:
        """Under the lock; a file or disk that fails raises `Retryable` (reason "state")."""
        try:
            with self._lock:
                yield
        except (OSError, sqlite3.Error) as exc:
            raise Retryable(f"delivery ledger {self.path}: {exc}", reason="state") from exc

    def has(self, alert_id: str, destination: str) -> bool:
        with self._using():
            row = self._db.execute(
                "SELECT 1 FROM delivered WHERE alert_id = ? AND destination = ?",
                (alert_id, destination),
            ).fetchone()
        return row is not None

    def record(self, alert_id: str, destination: str, at: float) -> None:
        """Raises `Retryable` if the disk refuses; the delivery itself stands."""
        with self._using():
            self._db.execute(
                "INSERT OR REPLACE INTO delivered VALUES (?, ?, ?)", (alert_id, destination, at)
            )
            self._since_prune += 1
            due = self._since_prune >= PRUNE_EVERY
        if due:
            self.prune(at)

    def prune(self, now: float) -> int:
        """Forget deliveries older than the retention; returns how many."""
        with self._using():
            self._since_prune = 0
            cursor = self._db.execute(
                "DELETE FROM delivered WHERE delivered_at < ?", (now - self.retention,)
            )
        return cursor.rowcount

    def __len__(self) -> int:
        with self._using():
            (count,) = self._db.execute("SELECT COUNT(*) FROM delivered").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_ledger(state_dir: Path, settings: NotifierSettings) -> DeliveredLedger:
    """The ledger of a notifier (Kafka worker or `newsmon run`) whose state is in `state_dir`."""
    return DeliveredLedger(
        state_dir / "notifier" / LEDGER_FILE, settings.delivered_retention_seconds
    )
