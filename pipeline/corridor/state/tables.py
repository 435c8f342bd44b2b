"""SQLite tables kept per partition, every write mirrored to a changelog.

Each table has a `part` column (the partition its rows belong to) and a key;
a changelog record is keyed by the table's name and the row's key, and carries
the whole row as JSON (bytes in base64) or nothing (the row was deleted), so a
compacted topic keeps each row's latest state. Writes made inside
`transaction()` reach the changelog only if the SQLite transaction commits, and
`flush()` returns once they are acknowledged: flush before publishing what the
decision produced, and a new owner never acts on less than was published.

The cache remembers, per partition, the changelog offset its rows reflect
(`changelog_positions`), so an assignment replays only what was written since (by
another owner, while the partition was away) instead of the whole partition: with
the eager rebalances of kafka-python every rebalance revokes and re-assigns every
partition. The position is cleared in the same SQLite transaction as a write and set
again only once the changelog acknowledged that write right after the last record the
cache reflects; a `kill -9` in between, a write the changelog refused, or another
writer in between leaves it cleared, and the next assignment replays the partition
from its start. A compacted topic keeps a deleted row's tombstone only for
`delete.retention.ms` (a day by default), so a position older than
`CATCH_UP_MAX_AGE_SECONDS` is not trusted either: a cache that was away that long could
miss a delete.

Rows of a partition that moved away stay in the cache (`release`) so that it can
catch up if the partition comes back; until it does they are left out of `rows()`, so
nothing acts on them (a digest, a prune) on behalf of the partition's new owner.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.corridor.state.changelog import Changelog, NoChangelog
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
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
        self,
        db: sqlite3.Connection,
        tables: Sequence[Table],
        changelog: Changelog,
        name: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.tables = {t.name: t for t in tables}
        self.changelog = changelog
        self.name = name
        self.metrics = metrics
        self.lock = threading.RLock()
        self._queued: list[tuple[int, bytes, bytes | None]] | None = None
        self._owned: set[int] | None = None
        """Partitions this process owns; None (no filter) until the first restore or release."""
        self._known: dict[int, int] = {}
        """Per partition, the changelog offset the cache reflects once its writes are acked."""
        self._dirty: set[int] = set()
        self._stale: set[int] = set()
        """Partitions whose cache may hold writes the changelog refused (`refresh_stale`)."""
        db.execute(_POSITIONS)
        if metrics is not None:
            metrics.declare_state_store(name, list(self.tables))

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
                    self._mark_dirty({partition for partition, _, _ in self._queued})
                queued = self._queued
            except sqlite3.Error as exc:
                raise Retryable(f"{self.name} state: {exc}", reason="state") from exc
            finally:
                self._queued = None
            try:
                for partition, key, value in queued:
                    self.changelog.write(partition, key, value)
            except Retryable:  # in the cache, maybe not in the changelog: replay them in full
                for partition in {partition for partition, _, _ in queued}:
                    self._known.pop(partition, None)
                    self._stale.add(partition)
                raise

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
        """Rows (with `part`) matching a SQL condition, as dicts; only of owned partitions
        once ownership is known."""
        spec = self.tables[table]
        cols = ("part", *spec.columns)
        owned, owned_params = self.owned_clause()
        with self.lock:
            found = self.db.execute(
                f"SELECT {', '.join(cols)} FROM {table} WHERE ({where}) AND {owned}",
                (*params, *owned_params),
            ).fetchall()
        return [dict(zip(cols, r, strict=True)) for r in found]

    def owned_clause(self) -> tuple[str, tuple[int, ...]]:
        """A SQL condition on `part` that keeps the rows of owned partitions, and its values."""
        owned = self._owned
        if owned is None:
            return "1", ()
        parts = tuple(sorted(owned))
        return f"part IN ({', '.join('?' * len(parts))})", parts

    def flush(self) -> None:
        """Return once every write is acknowledged; then the cache's positions move on."""
        with self.lock:
            dirty, self._dirty = self._dirty, set()
            try:
                acked = self.changelog.flush()
            except Retryable:
                for partition in dirty:  # which of them landed is unknown: replay them in full
                    self._known.pop(partition, None)
                self._stale |= dirty
                raise
            self._advance(dirty, acked)

    def restore(self, partitions: Iterable[int]) -> int:
        """Bring the partitions' rows up to the changelog's end; returns records read.

        A partition whose cached position is trusted is caught up from there; any other
        is wiped and replayed from its start. What this process wrote is flushed first:
        a write still on its way when the replay reads the end offset would otherwise be
        missing from the cache.
        """
        if not self.mirrored:
            return 0
        applied = 0
        with self.lock:
            self.flush()
            for partition in sorted(set(partitions)):
                applied += self._restore_one(partition)
                self._own({partition})
                self._stale.discard(partition)
        return applied

    def refresh_stale(self) -> set[int]:
        """Replay, in full, the partitions whose writes the changelog refused; returns them.

        A decision whose changelog write failed is still in the cache; decided again from
        there it would be published while the changelog (what the next owner restores)
        lacks it. So the cache of those partitions is rebuilt from the changelog first,
        and the decision is made, and written, again. `Retryable` while it cannot be read.
        """
        with self.lock:
            stale = set(self._stale)
            if not stale:
                return stale
            self.restore(stale)
            self._stale -= stale
        return stale

    def release(self, partitions: Iterable[int]) -> None:
        """Partitions moved away: their rows stay as a cache (caught up if they come back)
        but are no longer acted on. Then flushes: what is acknowledged keeps its position."""
        if not self.mirrored:
            return
        with self.lock:
            gone = set(partitions)
            held = (self._owned or set()) & gone  # current until now
            self._owned = (self._owned or set()) - gone
            try:
                self.flush()
            except Retryable as exc:  # their positions stay untrusted: replayed in full
                log.warning("state not flushed on release", extra={"stage": self.name,
                            "partition": sorted(gone), "reason": str(exc)})  # fmt: skip
            with immediate(self.db):  # the age of their positions counts from here
                self.db.execute(
                    "UPDATE changelog_positions SET at = ? WHERE next_offset IS NOT NULL"
                    f" AND part IN ({', '.join('?' * len(held))})",
                    (time.time(), *held),
                )

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions altogether (their changelog keeps them)."""
        if not self.mirrored:
            return
        with self.lock, immediate(self.db):
            for partition in set(partitions):
                self._wipe(partition)
                self._stale.discard(partition)
            if self._owned is not None:
                self._owned -= set(partitions)

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

    def position(self, partition: int) -> int | None:
        """The changelog offset the cache's rows of `partition` reflect, if trusted."""
        with self.lock:
            found = self.db.execute(
                "SELECT next_offset, at FROM changelog_positions WHERE part = ?", (partition,)
            ).fetchone()
        if found is None or found[0] is None:
            return None
        next_offset, at = found
        return int(next_offset) if time.time() - float(at) <= CATCH_UP_MAX_AGE_SECONDS else None

    def _restore_one(self, partition: int) -> int:
        started = time.monotonic()
        begin, end = self.changelog.bounds(partition)
        stored = self.position(partition)
        catch_up = stored is not None and begin <= stored <= end
        start = stored if catch_up and stored is not None else begin
        read: Counter[str] = Counter()
        with immediate(self.db):
            if not catch_up:
                self._wipe(partition)
            for key, value in self.changelog.replay(partition, start, end):
                read[self._apply(partition, key, value)] += 1
            self._set_position(partition, end)
        self._known[partition] = end
        mode = "catch_up" if catch_up else "full"
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.state_restore_seconds.labels(self.name, mode).observe(seconds)
            for table, count in read.items():
                self.metrics.state_restored_records.labels(self.name, table).inc(count)
        log.info(
            "state partition restored",
            extra={"stage": self.name, "partition": partition, "mode": mode,
                   "records": sum(read.values()), "offset": end, "seconds": round(seconds, 3)},
        )  # fmt: skip
        return sum(read.values())

    def _own(self, partitions: set[int]) -> None:
        self._owned = (self._owned or set()) | partitions

    def _mark_dirty(self, partitions: set[int]) -> None:
        """Inside the write's SQLite transaction: until the changelog acknowledges the
        write, the cache reflects no known offset of these partitions."""
        if not partitions or not self.mirrored:
            return
        self.db.executemany(
            "INSERT OR REPLACE INTO changelog_positions (part, next_offset, at)"
            " VALUES (?, NULL, 0)",
            [(p,) for p in partitions],
        )
        self._dirty |= partitions

    def _advance(self, dirty: set[int], acked: Mapping[int, Sequence[int]]) -> None:
        """Trust a dirty partition's position again if our acknowledged writes follow the
        last record the cache reflected, with nothing (another writer's) in between."""
        moved: dict[int, int] = {}
        for partition in dirty:
            offsets = sorted(acked.get(partition, ()))
            known = self._known.pop(partition, None)
            if known is not None and offsets == list(range(known, known + len(offsets))):
                moved[partition] = known + len(offsets)
        if not moved:
            return
        with immediate(self.db):
            for partition, offset in moved.items():
                self._set_position(partition, offset)
        self._known.update(moved)

    def _set_position(self, partition: int, offset: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO changelog_positions (part, next_offset, at) VALUES (?, ?, ?)",
            (partition, offset, time.time()),
        )

    def _wipe(self, partition: int) -> None:
        for table in self.tables:
            self.db.execute(f"DELETE FROM {table} WHERE part = ?", (partition,))
        self.db.execute("DELETE FROM changelog_positions WHERE part = ?", (partition,))
        self._known.pop(partition, None)

    def _apply(self, partition: int, key: bytes, value: bytes | None) -> str:
        """Apply one changelog record; returns the table it was of ("" if unknown)."""
        try:
            table_name, *key_values = json.loads(key)
            spec = self.tables[table_name]
        except (ValueError, KeyError, TypeError):
            log.warning("unknown changelog record skipped", extra={"partition": partition})
            return ""
        if value is None:
            where = " AND ".join(f"{c} = ?" for c in ("part", *spec.key))
            self.db.execute(f"DELETE FROM {spec.name} WHERE {where}", (partition, *key_values))
            return spec.name
        row = _decode_row(spec, value)
        cols = ("part", *spec.columns)
        self.db.execute(
            f"INSERT OR REPLACE INTO {spec.name} ({', '.join(cols)})"
            f" VALUES ({', '.join('?' * len(cols))})",
            (partition, *(row.get(c) for c in spec.columns)),
        )
        return spec.name

    def _queue(self, partition: int, key: bytes, value: bytes | None) -> None:
        if self._queued is None:
            raise RuntimeError(f"{self.name} state written outside a transaction")
        self._queued.append((partition, key, value))

    def close(self) -> None:
        """Flush first, so that a clean stop leaves positions the next start can trust."""
        with self.lock:
            with contextlib.suppress(Retryable):
                self.flush()
            self.changelog.close()
            self.db.close()


_POSITIONS = (
    "CREATE TABLE IF NOT EXISTS changelog_positions"
    " (part INTEGER PRIMARY KEY, next_offset INTEGER, at REAL NOT NULL)"
)
CATCH_UP_MAX_AGE_SECONDS = 12 * 3600.0
"""Half of Kafka's default `delete.retention.ms`: an older position may have missed a
tombstone that compaction has since removed."""


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
