"""`PartitionTables`: the cache follows the changelog, and only committed writes reach it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rules_stories import rule, seed_story

from pipeline.config import RulesSettings
from pipeline.corridor.records import Message
from pipeline.corridor.state import NoChangelog, PartitionTables, Table
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
from pipeline.rules.engine import RulesEngine
from pipeline.rules.stage import DecideStage, MatchStage
from pipeline.rules.store import AlertStore, SourcePosition, StoredAlert
from pipeline.storage import connect

COUNTS = Table("counts", key=("name",), values=("value",))
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counts"
    " (part INTEGER, name TEXT, value INTEGER, PRIMARY KEY (part, name))"
)


class ListChangelog:
    """A changelog in memory: what was flushed, per partition, in order (offset = index)."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, bytes, bytes | None]] = []
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.fail = False
        self.read = 0

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.pending.append((partition, key, value))

    def flush(self) -> dict[int, list[int]]:
        if self.fail:
            self.pending = []
            raise Retryable("broker away", reason="state")
        acked: dict[int, list[int]] = {}
        for partition, key, value in self.pending:
            records = self.log.setdefault(partition, [])
            acked.setdefault(partition, []).append(len(records))
            records.append((key, value))
        self.pending = []
        return acked

    def bounds(self, partition: int) -> tuple[int, int]:
        return 0, len(self.log.get(partition, []))

    def replay(self, partition: int, start: int, end: int) -> Iterator[tuple[bytes, bytes | None]]:
        records = list(self.log.get(partition, []))[start:end]
        self.read += len(records)
        return iter(records)

    def close(self) -> None:
        pass


def tables(
    changelog: ListChangelog, path: Path | str = ":memory:", metrics: Metrics | None = None
) -> PartitionTables:
    return PartitionTables(connect(path, SCHEMA), [COUNTS], changelog, "test", metrics)


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


def count(t: PartitionTables, partition: int, name: str, value: int) -> None:
    with t.transaction():
        t.upsert("counts", partition, {"name": name, "value": value})


def test_a_rebalance_that_keeps_a_partition_reads_nothing_again() -> None:
    changelog = ListChangelog()
    owner = tables(changelog)
    assert owner.restore([0]) == 0
    for n in range(5):
        count(owner, 0, f"n{n}", n)
    owner.flush()
    assert owner.position(0) == 5
    owner.release([0])  # eager rebalance: revoked, then assigned again
    changelog.read = 0
    assert owner.restore([0]) == 0
    assert changelog.read == 0
    assert len(names(owner)) == 5


def test_a_partition_back_from_another_owner_reads_only_what_it_wrote() -> None:
    changelog = ListChangelog()
    first, second = tables(changelog), tables(changelog)
    first.restore([0])
    count(first, 0, "a", 1)
    count(first, 0, "b", 2)
    first.release([0])
    second.restore([0])
    count(second, 0, "a", 10)
    with second.transaction():
        second.delete("counts", 0, {"name": "b"})
    second.release([0])
    changelog.read = 0
    assert first.restore([0]) == 2
    assert changelog.read == 2
    assert names(first) == {"a": 10}


def test_a_kill_before_the_changelog_acknowledged_a_write_means_a_full_replay(
    tmp_path: Path,
) -> None:
    changelog = ListChangelog()
    path = tmp_path / "cache.sqlite3"
    first = tables(changelog, path)
    first.restore([0])
    count(first, 0, "durable", 1)
    first.flush()
    count(first, 0, "lost", 2)  # in the cache, never acknowledged: kill -9 now
    changelog.pending = []
    first.db.close()

    again = tables(changelog, path)
    assert again.position(0) is None
    assert again.restore([0]) == 1
    assert names(again) == {"durable": 1}
    assert again.position(0) == 1


def test_a_write_the_changelog_refused_is_not_trusted_later() -> None:
    changelog = ListChangelog()
    t = tables(changelog)
    t.restore([0])
    count(t, 0, "refused", 1)
    changelog.fail = True
    with pytest.raises(Retryable):
        t.flush()
    changelog.fail = False
    count(t, 0, "next", 2)  # acknowledged right after the end, but the refused one is missing
    t.flush()
    assert t.position(0) is None


def test_another_writer_in_between_makes_the_position_untrusted() -> None:
    changelog = ListChangelog()
    mine, zombie = tables(changelog), tables(changelog)
    mine.restore([0])
    count(zombie, 0, "zombie", 1)
    zombie.flush()
    count(mine, 0, "mine", 2)
    mine.flush()
    assert mine.position(0) is None
    mine.release([0])
    assert mine.restore([0]) == 2  # in full
    assert names(mine) == {"zombie": 1, "mine": 2}


def test_an_old_position_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.corridor.state.tables as module

    changelog = ListChangelog()
    t = tables(changelog)
    t.restore([0])
    count(t, 0, "a", 1)
    t.flush()
    monkeypatch.setattr(module, "CATCH_UP_MAX_AGE_SECONDS", -1.0)
    assert t.position(0) is None


def test_released_rows_are_kept_but_not_acted_on(tmp_path: Path) -> None:
    changelog = ListChangelog()
    store = AlertStore(tmp_path / "a.sqlite3", changelog)
    store.restore([0, 1])
    with store.transaction():
        held = StoredAlert("r", "s1", "id1", "held", b"{}")
        store.put(held, 1.0, SourcePosition("c", 1, 0), window_start=0.5)
    store.flush()
    assert [g.rule_id for g in store.held_due(now=100.0, window=60.0)] == ["r"]
    store.release([1])
    assert store.held_due(now=100.0, window=60.0) == []  # the new owner sends that digest
    assert store.get("r", "s1") is not None  # still cached, to catch up from


def test_restores_are_counted_per_table_and_timed_per_mode() -> None:
    metrics = Metrics(CollectorRegistry())
    changelog = ListChangelog()
    writer = tables(changelog)
    for n in range(3):
        count(writer, 2, f"n{n}", n)
    writer.flush()
    reader = tables(changelog, metrics=metrics)
    sample = metrics.registry.get_sample_value
    assert sample("newsmon_state_restored_records_total", {"store": "test", "table": "counts"}) == 0
    reader.restore([2])
    reader.release([2])
    reader.restore([2])
    assert sample("newsmon_state_restored_records_total", {"store": "test", "table": "counts"}) == 3
    for mode in ("full", "catch_up"):
        labels = {"store": "test", "mode": mode}
        assert sample("newsmon_state_restore_seconds_count", labels) == 1


def test_a_decision_the_changelog_refused_is_made_and_written_again_not_republished(
    tmp_path: Path,
) -> None:
    """A decided candidate whose changelog write failed is still in the cache; the retry
    must not publish it from there while the changelog (what the next owner restores)
    lacks it."""
    changelog = ListChangelog()
    metrics = Metrics(CollectorRegistry())
    store = AlertStore(tmp_path / "rules.sqlite3", changelog, metrics)
    engine = RulesEngine(
        tmp_path / "no-rules-file.yaml", RulesSettings(), store, metrics,
        rules=[rule("unbundling", "unbundling")],
    )  # fmt: skip
    engine.restore({0})
    decide = DecideStage(engine, "alerts")
    [alert] = engine.candidates(seed_story())
    [candidate] = MatchStage(engine, "candidates").handle_batch(
        [Message("enriched", 0, 0, None, seed_story().to_bytes())]
    )
    assert isinstance(candidate, list)
    message = Message("candidates", 0, 0, alert.rule_id.encode(), candidate[0].value,
                      candidate[0].headers)  # fmt: skip

    changelog.fail = True  # the broker went away while the decision was flushed
    [refused] = decide.handle_batch([message])
    assert isinstance(refused, Retryable)
    changelog.fail = False
    [retried] = decide.handle_batch([message])
    assert isinstance(retried, list) and [o.key for o in retried] == [alert.alert_id]

    next_owner = AlertStore(tmp_path / "next.sqlite3", changelog)
    next_owner.restore([0])
    assert next_owner.get("unbundling", alert.story.id) is not None
