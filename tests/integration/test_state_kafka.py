"""State per partition on a real broker: what one replica decided, the next owner finds.

The changelog mechanism itself (`PartitionTables` over `KafkaChangelog`), then the
rules worker as replicas: a replica that takes over restores what its predecessor
decided, and two syndicated copies of one story handled at the same moment by two
replicas raise one alert per rule, because candidate alerts are re-keyed by rule and
one owner decides.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from notifier_receiver import Receiver, make_alert
from prometheus_client import CollectorRegistry
from test_notifier_kafka import forget_commits, running, sample, settings_for, steady, webhook
from test_rules_kafka import (
    RULES,
    SEED_RULES,
    alerts_on,
    publish_stories,
    seed_story,
    syndicated_copy,
)

from pipeline.config import KafkaSettings, RulesSettings, Settings
from pipeline.corridor.kafka.changelog import KafkaChangelog
from pipeline.corridor.kafka.clients import Producer, read_to_end
from pipeline.corridor.kafka.membership import partition_for_key
from pipeline.corridor.records import Output
from pipeline.corridor.state import PartitionTables, Table
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, story_id_for
from pipeline.notifier.commands import kafka_ledger
from pipeline.rules.engine import STORE_FILE, RulesEngine
from pipeline.rules.store import AlertStore
from pipeline.rules.worker import RulesWorker
from pipeline.storage import connect

pytestmark = pytest.mark.integration
__all__ = ["steady"]  # the receiver fixture, shared with the notifier tests

COUNTS = Table("counts", key=("name",), values=("value", "blob"), blobs=frozenset({"blob"}))
SCHEMA = """CREATE TABLE IF NOT EXISTS counts (part INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER,
blob BLOB, PRIMARY KEY (part, name))"""


def tables(settings: KafkaSettings, path: Path) -> PartitionTables:
    changelog = KafkaChangelog(settings, settings.topics.rules_state, "test")
    return PartitionTables(connect(path, SCHEMA), [COUNTS], changelog, "test")


def test_rows_written_by_one_owner_are_restored_by_the_next(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    first = tables(kafka_settings, tmp_path / "a.sqlite3")
    with first.transaction():
        first.upsert("counts", 0, {"name": "kept", "value": 1, "blob": b"\x00\xff"})
        first.upsert("counts", 0, {"name": "gone", "value": 2, "blob": None})
        first.upsert("counts", 1, {"name": "other", "value": 3, "blob": None})
    with first.transaction():
        first.upsert("counts", 0, {"name": "kept", "value": 5, "blob": b"\x01"})
        first.delete("counts", 0, {"name": "gone"})
    with pytest.raises(RuntimeError), first.transaction():  # rolled back: never sent
        first.upsert("counts", 0, {"name": "rolled-back", "value": 9, "blob": None})
        raise RuntimeError("the decision failed")
    first.flush()
    first.close()

    second = tables(kafka_settings, tmp_path / "b.sqlite3")
    # a cache row the changelog does not have (a stale file) is wiped by the restore
    second.db.execute("INSERT INTO counts VALUES (0, 'stale', 7, NULL)")
    assert second.restore([0]) == 4
    rows = second.rows("counts")
    assert rows == [{"part": 0, "name": "kept", "value": 5, "blob": b"\x01"}]
    second.restore([1])
    assert {r["name"] for r in second.rows("counts")} == {"kept", "other"}
    second.drop([0])
    assert [r["name"] for r in second.rows("counts")] == ["other"]
    second.close()


def test_a_partition_that_comes_back_is_caught_up_from_the_cached_offset(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    first = tables(kafka_settings, tmp_path / "a.sqlite3")
    first.restore([0])
    with first.transaction():
        first.upsert("counts", 0, {"name": "a", "value": 1, "blob": None})
        first.upsert("counts", 0, {"name": "b", "value": 2, "blob": None})
    first.release([0])
    assert first.position(0) == 2  # the offsets the broker gave our writes
    second = tables(kafka_settings, tmp_path / "b.sqlite3")
    assert second.restore([0]) == 2
    with second.transaction():
        second.upsert("counts", 0, {"name": "a", "value": 3, "blob": None})
    second.release([0])
    second.close()
    assert first.restore([0]) == 1  # only what the other owner wrote meanwhile
    assert {r["name"]: r["value"] for r in first.rows("counts")} == {"a": 3, "b": 2}
    first.close()

    again = tables(kafka_settings, tmp_path / "a.sqlite3")  # a restart keeps the cache
    assert again.restore([0]) == 0
    assert {r["name"]: r["value"] for r in again.rows("counts")} == {"a": 3, "b": 2}
    again.close()


class Replica:
    """`newsmon rules` (its `RulesWorker`) in a thread, with a state dir of its own."""

    def __init__(self, settings: KafkaSettings, state_dir: Path) -> None:
        self.metrics = Metrics(CollectorRegistry())
        changelog = KafkaChangelog(settings, settings.topics.rules_state, "rules")
        store = AlertStore(state_dir / STORE_FILE, changelog)
        engine = RulesEngine(RULES, RulesSettings(), store, self.metrics)
        self.stop = threading.Event()
        self.worker = RulesWorker(engine, settings, self.metrics, self.stop)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def assigned(self) -> bool:
        return bool(
            self.worker.match.consumer.assignment() and self.worker.decide.consumer.assignment()
        )

    def candidates_decided(self) -> float:
        sample = self.metrics.registry.get_sample_value
        return sum(
            sample("newsmon_records_total", {"stage": "rules", "outcome": o}) or 0
            for o in ("ok", "skipped", "dead_letter")
        )

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@contextmanager
def replicas(settings: KafkaSettings, folder: Path, count: int) -> Iterator[list[Replica]]:
    started = [Replica(settings, folder / f"replica-{i}") for i in range(count)]
    try:
        wait_for(lambda: all(r.assigned() for r in started), "every replica assigned")
        yield started
    finally:
        for replica in started:
            replica.close()


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 120.0,
    settings: KafkaSettings | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}" + (
            f"; dead letters: {dead_letters(settings)}" if settings else ""
        )
        time.sleep(0.2)


def dead_letters(settings: KafkaSettings) -> list[dict[str, str]]:
    return [
        {k: v.decode(errors="replace") for k, v in m.headers if k.startswith("newsmon.error")}
        for m in read_to_end(settings, settings.topics.dead_letter)
    ]


def test_a_replica_taking_over_finds_what_the_last_owner_decided(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    story = seed_story()
    with replicas(kafka_settings, tmp_path / "first", 1) as (_first,):
        publish_stories(kafka_settings, [story])
        wait_for(
            lambda: len(alerts_on(kafka_settings)) >= 3, "the seed alerts",
            settings=kafka_settings,
        )  # fmt: skip
    # The first owner is gone with its cache; the story and a wire copy come back.
    with replicas(kafka_settings, tmp_path / "second", 1) as (second,):
        publish_stories(kafka_settings, [story, syndicated_copy(story)])
        wait_for(lambda: second.candidates_decided() >= 6, "the candidates decided")
        time.sleep(1)
    alerts = alerts_on(kafka_settings)
    assert Counter(a.rule_id for a in alerts) == dict.fromkeys(SEED_RULES, 1)
    suppressed = second.metrics.registry.get_sample_value
    assert suppressed("newsmon_alerts_suppressed_total", {"reason": "same_story"}) == 3
    assert suppressed("newsmon_alerts_suppressed_total", {"reason": "near_duplicate"}) == 3


def keyed_to(settings: KafkaSettings, partition: int, prefix: str) -> str:
    """A story key that the producer puts on `partition` of the enriched topic."""
    for n in range(10_000):
        key = f"{prefix}-{n}"
        if partition_for_key(key, settings.partitions) == partition:
            return key
    raise AssertionError("no key found")


def test_two_copies_on_two_partitions_at_once_raise_one_alert_per_rule(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    original = seed_story()
    copy = syndicated_copy(original)
    stories: list[tuple[str, EnrichedStory]] = [
        (keyed_to(kafka_settings, 0, "a"), original),
        (keyed_to(kafka_settings, 1, "b"), copy),
    ]
    assert story_id_for(copy.url) != original.id
    with replicas(kafka_settings, tmp_path, 2) as both:
        # each replica owns one partition of the stories: the copies meet on two replicas
        owners = [{tp.partition for tp in r.worker.match.consumer.assignment()} for r in both]
        assert sorted(map(sorted, owners)) == [[0], [1]]
        producer = Producer(kafka_settings)
        try:
            producer.publish(
                [Output(kafka_settings.topics.enriched, k, s.to_bytes()) for k, s in stories]
            )
        finally:
            producer.close()
        wait_for(lambda: sum(r.candidates_decided() for r in both) >= 6, "the candidates decided")
        time.sleep(1)
    alerts = alerts_on(kafka_settings)
    assert Counter(a.rule_id for a in alerts) == dict.fromkeys(SEED_RULES, 1)


def notifier_replica(settings: Settings, state_dir: Path) -> AbstractContextManager[Metrics]:
    """`newsmon notifier` as it runs on Kafka: its ledger a cache of the changelog."""
    return running(settings, kafka_ledger(state_dir, settings))


def test_a_notifier_replica_taking_over_does_not_deliver_again(
    kafka_settings: KafkaSettings, steady: Receiver, tmp_path: Path
) -> None:
    """Replica A delivers and is gone before committing (its group's commits deleted, as
    after a kill -9); replica B, on another host (state dir), reads every alert again
    and sends none of them twice, because it replayed A's ledger from the changelog."""
    settings = settings_for(kafka_settings, [webhook("steady", steady)])
    alerts = [make_alert(n) for n in range(6)]
    publish_keyed_by_alert(kafka_settings, alerts)
    with notifier_replica(settings, tmp_path / "a"):
        assert steady.wait_for(6, timeout=60)
    forget_commits(kafka_settings, f"{kafka_settings.group_prefix}-notifier")
    publish_keyed_by_alert(kafka_settings, [make_alert(6)])
    with notifier_replica(settings, tmp_path / "b") as metrics:
        assert steady.wait_for(7, timeout=60)
        wait_for(
            lambda: sample(metrics, "newsmon_deliveries_total", destination="steady",
                           outcome="already_delivered") >= 6,
            "the re-read alerts recognised",
        )  # fmt: skip
    ids = Counter(r.headers["webhook-id"] for r in steady.accepted())
    assert ids == {a.alert_id: 1 for a in [*alerts, make_alert(6)]}


def publish_keyed_by_alert(kafka: KafkaSettings, alerts: list[Alert]) -> None:
    """As the rules stage publishes them: keyed by alert id."""
    producer = Producer(kafka)
    try:
        producer.publish([Output(kafka.topics.alerts, a.alert_id, a.to_bytes()) for a in alerts])
    finally:
        producer.close()
