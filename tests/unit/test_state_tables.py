"""`PartitionTables`: the cache follows the changelog, and only committed writes reach it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.corridor.state import NoChangelog, PartitionTables, Table
from pipeline.errors import Retryable
from pipeline.rules.store import AlertStore, StoredAlert
from pipeline.storage import connect

COUNTS = Table("counts", key=("name",), values=("value",))
SCHEMA = "CREATE TABLE counts (part INTEGER, name TEXT, value INTEGER, PRIMARY KEY (part, name))"


class ListChangelog:
    """A changelog in memory: what was flushed, per partition, in order."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, bytes, bytes | None]] = []
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.fail = False

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.pending.append((partition, key, value))

    def flush(self) -> None:
        if self.fail:
            raise Retryable("broker away", reason="state")
        for partition, key, value in self.pending:
            self.log.setdefault(partition, []).append((key, value))
        self.pending = []

    def replay(self, partition: int) -> Iterator[tuple[bytes, bytes | None]]:
        return iter(list(self.log.get(partition, [])))

    def close(self) -> None:
        pass


def tables(changelog: ListChangelog) -> PartitionTables:
    return PartitionTables(connect(":memory:", SCHEMA), [COUNTS], changelog, "test")


def names(t: PartitionTables) -> dict[str, int]:
    return {r["name"]: r["value"] for r in t.rows("counts")}


def test_a_second_owner_restores_exactly_what_the_first_committed() -> None:
    changelog = ListChangelog()
    first = tables(changelog)
    with first.transaction():
        first.upsert("counts", 3, {"name": "a", "value": 1})
        first.upsert("counts", 3, {"name": "b", "value": 2})
    with first.transaction():
        first.delete("counts", 3, {"name": "b"})
        first.upsert("counts", 4, {"name": "elsewhere", "value": 9})
    with pytest.raises(ValueError), first.transaction():
        first.upsert("counts", 3, {"name": "never", "value": 0})
        raise ValueError("decision failed")
    first.flush()

    second = tables(changelog)
    second.db.execute("INSERT INTO counts VALUES (3, 'stale', 5)")
    assert second.restore([3]) == 3
    assert names(second) == {"a": 1}
    assert second.partitions() == {3}
    second.drop([3])
    assert names(second) == {}


def test_writes_outside_a_transaction_are_refused() -> None:
    t = tables(ListChangelog())
    with pytest.raises(RuntimeError):
        t.upsert("counts", 0, {"name": "a", "value": 1})


def test_the_rules_store_changelog_rebuilds_alerts_throttles_and_signatures(
    tmp_path: Path,
) -> None:
    changelog = ListChangelog()
    store = AlertStore(tmp_path / "a.sqlite3", changelog)
    with store.transaction():
        store.put(StoredAlert("r", "s1", "id1", "held", b"{}"), 1.0, None, window_start=0.5)
        store.admit("r", 1.0, limit=5, window=60.0)
        store.put_signature("s1", 1.0, b"\x01" * 512)
    store.mark_digested("r", 0.5)
    store.flush()
    other = AlertStore(tmp_path / "b.sqlite3", changelog)
    other.restore([0])
    assert other.get("r", "s1") == StoredAlert("r", "s1", "id1", "digested", None)
    assert [s[0] for s in other.signatures_since(0.0)] == ["s1"]
    with other.transaction():
        assert other.admit("r", 2.0, limit=2, window=60.0) is None  # the 2nd in the window
        assert other.admit("r", 3.0, limit=2, window=60.0) == 1.0  # over: held


def test_a_legacy_rules_file_is_migrated_to_partition_zero(tmp_path: Path) -> None:
    path = tmp_path / "rules.sqlite3"
    db = connect(path)
    db.executescript(
        "CREATE TABLE alerts (rule_id TEXT, story_id TEXT, alert_id TEXT, state TEXT,"
        " raised_at REAL, window_start REAL, source_topic TEXT, source_partition INTEGER,"
        " source_offset INTEGER, payload BLOB, PRIMARY KEY (rule_id, story_id));"
        "INSERT INTO alerts VALUES ('r', 's', 'i', 'published', 1, NULL, NULL, NULL, NULL, NULL);"
        "CREATE TABLE signatures (story_id TEXT PRIMARY KEY, seen_at REAL, hashvalues BLOB);"
        "INSERT INTO signatures VALUES ('s', 1.0, x'00');"
    )
    db.close()
    store = AlertStore(path)
    assert store.get("r", "s") is not None
    assert store.signatures_since(0.0) == [("s", 1.0, b"\x00")]


def test_without_a_changelog_the_file_is_the_truth_and_never_wiped() -> None:
    local = PartitionTables(connect(":memory:", SCHEMA), [COUNTS], NoChangelog(), "test")
    with local.transaction():
        local.upsert("counts", 0, {"name": "a", "value": 1})
    assert local.restore([0]) == 0
    local.drop([0])
    assert names(local) == {"a": 1}
