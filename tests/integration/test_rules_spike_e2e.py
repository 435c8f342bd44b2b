"""Spike rules end to end: once through `newsmon run` (a feed on loopback, a signed webhook),
and once through the Kafka rules worker on a real broker, with the counts of one replica
restored from the changelog by the next."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from notifier_receiver import Receiver
from poller_feedserver import FeedServer, Route
from prometheus_client import CollectorRegistry
from test_rules_kafka import alerts_on
from test_state_kafka import wait_for

from pipeline.config import KafkaSettings, RulesSettings
from pipeline.corridor.kafka.changelog import KafkaChangelog
from pipeline.corridor.kafka.clients import Producer
from pipeline.corridor.records import Output
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, story_id_for
from pipeline.rules.engine import STORE_FILE, RulesEngine
from pipeline.rules.store import AlertStore
from pipeline.rules.worker import RulesWorker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPIKE_RULES = """\
rules:
  - id: tesla-surge
    name: Tesla surge
    terms: [Tesla]
    spike: {window: 1h, baseline: 1d, factor: 3, min_count: 5}
"""
QUIET, BURST = 24, 10


def timeline(end: datetime) -> list[datetime]:
    """A story every two hours for two days, then ten in twenty minutes, up to `end`."""
    burst_start = end - timedelta(minutes=2 * (BURST - 1))
    quiet = [burst_start - timedelta(hours=2 * k) for k in range(QUIET, 0, -1)]
    return quiet + [burst_start + timedelta(minutes=2 * k) for k in range(BURST)]


# -- newsmon run ----------------------------------------------------------------------------


def feed_xml(server: FeedServer, times: list[datetime]) -> bytes:
    items = "".join(
        f"<item><title>Tesla headline {n}</title><link>{server.url(f'/story/{n}')}</link>"
        f"<description>{escape(f'Tesla shares moved again, report number {n} says.')}"
        f"</description><pubDate>{format_datetime(at)}</pubDate></item>"
        for n, at in enumerate(times)
    )
    return (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Cars</title>"
        f"<link>{server.url('/')}</link><description>cars</description>{items}</channel></rss>"
    ).encode()


def page(n: int) -> bytes:
    text = " ".join(
        f"Tesla shares moved again on Tuesday, report number {n} says, as analysts weighed "
        f"delivery figures and the outlook for the quarter. Paragraph {k}."
        for k in range(4)
    )
    return (
        f"<html lang='en'><head><title>Tesla headline {n}</title></head><body><article>"
        f"<h1>Tesla headline {n}</h1><p>{text}</p></article></body></html>"
    ).encode()


def test_a_spike_rule_fires_once_through_newsmon_run(tmp_path: Path) -> None:
    server, receiver = FeedServer(), Receiver()
    try:
        times = timeline(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
        server.route("/feed.xml", Route(feed_xml(server, times), headers=RSS))
        for n in range(len(times)):
            server.route(f"/story/{n}", Route(page(n), headers={"Content-Type": "text/html"}))
        rules, feeds = tmp_path / "rules.yaml", tmp_path / "feeds.yaml"
        rules.write_text(SPIKE_RULES, encoding="utf-8")
        feeds.write_text(f"feeds:\n  - url: {server.url('/feed.xml')}\n    name: cars\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
        env |= {"NEWSMON_METRICS__PORT": "0", "NEWSMON_EXTRACTION__WORKERS": "1"}
        command = [
            sys.executable, "-m", "pipeline.cli", "run", "--once", "--allow-private-networks",
            "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(rules),
            "--feeds", str(feeds), "--state-dir", str(tmp_path / "state"),
            "--webhook", receiver.url(), "--webhook-secret", SECRET,
        ]  # fmt: skip

        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
        )
    finally:
        server.close()
        receiver.close()

    assert done.returncode == 0, done.stderr[-3000:]
    [alert] = [request.json() for request in receiver.requests]  # once, not once per story
    assert alert["kind"] == "spike" and alert["rule_id"] == "tesla-surge"
    assert alert["spike"]["window_count"] >= 5
    assert alert["spike"]["baseline_mean"] <= 1
    assert len(alert["spike"]["headlines"]) == 5
    assert "spike, " in done.stdout  # printed for the person at the terminal


RSS = {"Content-Type": "application/rss+xml"}


# -- Kafka ----------------------------------------------------------------------------------


def stories(times: list[datetime]) -> list[EnrichedStory]:
    return [story(n, at) for n, at in enumerate(times)]


def story(n: int, at: datetime) -> EnrichedStory:
    url = f"https://cars.example/{n}"
    return EnrichedStory(
        id=story_id_for(url), url=url, title=f"Tesla headline {n}",
        text=f"Tesla shares moved again, report number {n} says.",
        text_source="full_text", published=at, first_seen=at, enriched_at=at, feed="cars",
    )  # fmt: skip


def publish_in_order(settings: KafkaSettings, batch: list[EnrichedStory]) -> None:
    """One key, one partition: the worker reads them in this order, as a feed gives them."""
    producer = Producer(settings)
    try:
        producer.publish([Output(settings.topics.enriched, "cars", s.to_bytes()) for s in batch])
    finally:
        producer.close()


@contextmanager
def rules_replica(settings: KafkaSettings, rules: Path, state_dir: Path) -> Iterator[Metrics]:
    """The `newsmon rules` worker in a thread, with a state dir of its own."""
    metrics = Metrics(CollectorRegistry())
    changelog = KafkaChangelog(settings, settings.topics.rules_state, "rules")
    engine = RulesEngine(rules, RulesSettings(), AlertStore(state_dir / STORE_FILE, changelog),
                         metrics)  # fmt: skip
    stop = threading.Event()
    worker = RulesWorker(engine, settings, metrics, stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield metrics
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()


def decided(metrics: Metrics) -> float:
    sample = metrics.registry.get_sample_value
    return sample("newsmon_records_total", {"stage": "rules", "outcome": "ok"}) or 0


def test_a_spike_rule_fires_once_through_the_kafka_worker_across_a_hand_over(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SPIKE_RULES, encoding="utf-8")
    batch = stories(timeline(datetime(2026, 3, 2, 12, 0, tzinfo=UTC)))
    first_part = QUIET + 3  # the history and three stories of the burst

    publish_in_order(kafka_settings, batch[:first_part])
    with rules_replica(kafka_settings, rules, tmp_path / "first") as metrics:
        wait_for(lambda: decided(metrics) >= first_part, "the first part counted")
    assert alerts_on(kafka_settings) == []

    # The first owner is gone with its cache: the next restores its counts from the changelog.
    publish_in_order(kafka_settings, batch[first_part:])
    with rules_replica(kafka_settings, rules, tmp_path / "second") as metrics:
        wait_for(lambda: decided(metrics) >= len(batch) - first_part, "the rest counted")
        fired = metrics.registry.get_sample_value
        assert fired("newsmon_spikes_fired_total", {"severity": "medium"}) == 1

    [alert] = alerts_on(kafka_settings)
    assert alert.kind == "spike" and alert.spike is not None
    assert alert.spike.window_count == 5  # three counted by the first owner, two by the next
    assert alert.spike.baseline_mean == 0.5
    assert alert.story.title == f"Tesla headline {QUIET + 4}"
    assert [h.title for h in alert.spike.headlines] == [
        f"Tesla headline {n}" for n in range(QUIET + 4, QUIET - 1, -1)
    ]
