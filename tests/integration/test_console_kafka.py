"""The console's Kafka feeder: its own consumer group fills the history store from the
alerts and enriched topics, commits after the store write, and resumes where it stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from seed import enriched_seed_story

from pipeline.config import KafkaSettings, RulesSettings, load_rules
from pipeline.corridor.kafka.clients import Producer
from pipeline.corridor.records import Output
from pipeline.history.feeder import HistoryWriter, start_kafka_feeder
from pipeline.history.store import AlertFilter, HistoryStore
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import MEMORY, AlertStore

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def seed_alerts() -> list[Alert]:
    rules = load_rules(ROOT / "configs" / "rules.yaml")
    engine = RulesEngine(
        ROOT / "configs" / "rules.yaml", RulesSettings(), AlertStore(MEMORY), Metrics(), rules=rules
    )
    return engine.process(enriched_seed_story())


def publish(settings: KafkaSettings, outputs: list[Output]) -> None:
    producer = Producer(settings)
    try:
        producer.publish(outputs)
    finally:
        producer.close()


def wait_until(condition: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def run_feeder(settings: KafkaSettings, store: HistoryStore, until: Callable[[], bool]) -> Metrics:
    metrics = Metrics()
    writer = HistoryWriter(
        store, metrics, 14, enriched=settings.topics.enriched, alerts=settings.topics.alerts
    )
    stop = threading.Event()
    feeder = start_kafka_feeder(writer, settings, metrics, stop)
    try:
        wait_until(until)
    finally:
        stop.set()
        feeder.join(timeout=60)
    assert not feeder.is_alive()
    return metrics


def test_the_feeder_stores_stories_and_alerts_and_resumes_from_its_commit(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    story = enriched_seed_story()
    alerts = seed_alerts()
    topics = kafka_settings.topics
    publish(kafka_settings, [Output(topics.enriched, story.id, story.to_bytes())])
    publish(kafka_settings, [Output(topics.alerts, a.alert_id, a.to_bytes()) for a in alerts[:2]])
    store = HistoryStore(tmp_path / "history.sqlite3")

    def count() -> int:
        return len(store.alerts(AlertFilter()).rows)

    run_feeder(kafka_settings, store, lambda: count() == 2 and store.story(story.id) is not None)

    publish(kafka_settings, [Output(topics.alerts, alerts[2].alert_id, alerts[2].to_bytes())])
    metrics = run_feeder(kafka_settings, store, lambda: count() == 3)

    sample = metrics.registry.get_sample_value
    assert sample("newsmon_history_records_total", {"kind": "alert", "outcome": "stored"}) == 1
    assert sample("newsmon_history_records_total", {"kind": "alert", "outcome": "duplicate"}) == 0
    assert sample("newsmon_history_records_total", {"kind": "story", "outcome": "duplicate"}) == 0
    assert {r.rule_id for r in store.alerts(AlertFilter()).rows} == {a.rule_id for a in alerts}
