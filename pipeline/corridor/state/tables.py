"""SQLite tables kept per partition, every write mirrored to a changelog.

Each table has a `part` column (the partition its rows belong to) and a key;
a changelog record is keyed by the table's name and the row's key, and carries
the whole row as JSON (bytes in base64) or nothing (the row was deleted), so a
compacted topic keeps each row's latest state. Writes made inside
`transaction()` reach the changelog only if the SQLite transaction commits, and
`flush()` returns once they are acknowledged: flush before publishing what the
decision produced, and a new owner never acts on less than was published.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.corridor.state.changelog import Changelog, NoChangelog
from pipeline.errors import Retryable
from pipeline.storage import immediate

log = logging.getLogger(__name__)

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    """A mirrored table: its key columns and its other columns (`part` is implied)."""

    name: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    blobs: frozenset[str] = field(default_factory=frozenset)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key, *self.values)


class PartitionTables:
    """The cache and its changelog; thread-safe (one lock around the connection)."""

    def __init__(
        self, db: sqlite3.Connection, tables: Sequence[Table], changelog: Changelog, name: str
    ) -> None:
        self.db = db
        self.tables = {t.name: t for t in tables}
        self.changelog = changelog
        self.name = name
        self.lock = threading.RLock()
        self._queued: list[tuple[int, bytes, bytes | None]] | None = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One decision's writes land together in SQLite and then go to the changelog."""
        with self.lock:
            outer = self._queued is None
            if not outer:  # nested: the outer transaction sends
                yield
                return
            self._queued = []
            try:
                with immediate(self.db):
                    yield
                queued = self._queued
            except sqlite3.Error as exc:
                raise Retryable(f"{self.name} state: {exc}", reason="state") from exc
            finally:
                self._queued = None
            for partition, key, value in queued:
                self.changelog.write(partition, key, value)

    def upsert(self, table: str, partition: int, row: Row) -> None:
        spec = self.tables[table]
        cols = ("part", *spec.columns)
        self.db.execute(
            f"INSERT OR REPLACE INTO {table} ({', '.join(cols)})"
            f" VALUES ({', '.join('?' * len(cols))})",
            (partition, *(row[c] for c in spec.columns)),
        )
        self._queue(partition, _record_key(spec, row), _encode_row(spec, row))

    def delete(self, table: str, partition: int, key: Row) -> None:
        spec = self.tables[table]
        where = " AND ".join(f"{c} = ?" for c in ("part", *spec.key))
        self.db.execute(
            f"DELETE FROM {table} WHERE {where}", (partition, *(key[c] for c in spec.key))
        )
        self._queue(partition, _record_key(spec, key), None)

    def rows(self, table: str, where: str = "1", params: Sequence[Any] = ()) -> list[Row]:
        """Rows (with `part`) matching a SQL condition, as dicts."""
        spec = self.tables[table]
        cols = ("part", *spec.columns)
        with self.lock:
            found = self.db.execute(
                f"SELECT {', '.join(cols)} FROM {table} WHERE {where}", tuple(params)
            ).fetchall()
        return [dict(zip(cols, r, strict=True)) for r in found]

    def flush(self) -> None:
        self.changelog.flush()

    def restore(self, partitions: Iterable[int]) -> int:
        """Wipe the partitions from the cache and replay their changelog; returns records read.

        What this process wrote is flushed first: a write still on its way when the
        replay reads the end offset would be wiped from the cache and not replayed.
        """
        if not self.mirrored:
            return 0
        self.changelog.flush()
        applied = 0
        for partition in sorted(set(partitions)):
            with self.lock, immediate(self.db):
                self._wipe(partition)
                for key, value in self.changelog.replay(partition):
                    self._apply(partition, key, value)
                    applied += 1
        return applied

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions that moved to another owner (their changelog keeps them)."""
        if not self.mirrored:
            return
        with self.lock, immediate(self.db):
            for partition in set(partitions):
                self._wipe(partition)

    @property
    def mirrored(self) -> bool:
        """Is there a changelog to restore from? Without one the file is the truth: never
        wiped."""
        return not isinstance(self.changelog, NoChangelog)

    def partitions(self) -> set[int]:
        """Partitions the cache holds rows of."""
        with self.lock:
            return {
                part
                for table in self.tables
                for (part,) in self.db.execute(f"SELECT DISTINCT part FROM {table}")
            }

    def _wipe(self, partition: int) -> None:
        for table in self.tables:
            self.db.execute(f"DELETE FROM {table} WHERE part = ?", (partition,))

    def _apply(self, partition: int, key: bytes, value: bytes | None) -> None:
        try:
            table_name, *key_values = json.loads(key)
            spec = self.tables[table_name]
        except (ValueError, KeyError, TypeError):
            log.warning("unknown changelog record skipped", extra={"partition": partition})
            return
        if value is None:
            where = " AND ".join(f"{c} = ?" for c in ("part", *spec.key))
            self.db.execute(f"DELETE FROM {spec.name} WHERE {where}", (partition, *key_values))
            return
        row = _decode_row(spec, value)
        cols = ("part", *spec.columns)
        self.db.execute(
            f"INSERT OR REPLACE INTO {spec.name} ({', '.join(cols)})"
            f" VALUES ({', '.join('?' * len(cols))})",
            (partition, *(row.get(c) for c in spec.columns)),
        )

    def _queue(self, partition: int, key: bytes, value: bytes | None) -> None:
        if self._queued is None:
            raise RuntimeError(f"{self.name} state written outside a transaction")
        self._queued.append((partition, key, value))

    def close(self) -> None:
        with self.lock:
            self.changelog.close()
            self.db.close()


def _record_key(spec: Table, row: Row) -> bytes:
    return json.dumps([spec.name, *(row[c] for c in spec.key)]).encode()


def _encode_row(spec: Table, row: Row) -> bytes:
    out = {
        c: base64.b64encode(row[c]).decode() if c in spec.blobs and row[c] is not None else row[c]
        for c in spec.columns
    }
    return json.dumps(out).encode()


def _decode_row(spec: Table, value: bytes) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(value)
    for c in spec.blobs:
        if row.get(c) is not None:
            row[c] = base64.b64decode(row[c])
    return row
