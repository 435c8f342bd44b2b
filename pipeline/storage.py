"""The one way newsmon opens a SQLite file: the embedded queue, the rules store, the
delivery ledger and the poller's state all need the same durability.

WAL lets readers run beside the one writer; `synchronous=FULL` makes a committed
transaction survive a power cut, not only a `kill -9`; `BEGIN IMMEDIATE` takes the
write lock up front, so two writers queue instead of failing half-way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MEMORY = ":memory:"


def connect(path: Path | str, schema: str = "") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread
    (callers hold their own lock), with `schema` applied."""
    if str(path) != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    if schema:
        db.executescript(schema)
    return db


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: all of it lands, or (on any exception) none of it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
