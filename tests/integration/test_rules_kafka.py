"""The rules worker on a real broker: syndication, restarts, kill -9, digests on an idle stream."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from seed import enriched_seed_story

from pipeline.config import KafkaSettings, RulesSettings
from pipeline.corridor.kafka.clients import Producer, read_to_end
from pipeline.corridor.records import Output
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, decode, story_id_for
from pipeline.rules.engine import STORE_FILE, RulesEngine
from pipeline.rules.stage import RulesStage
from pipeline.rules.store import AlertStore
from pipeline.rules.worker import rules_runner, run_worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "configs" / "rules.yaml"
WORKER = Path(__file__).resolve().parent / "rules_worker.py"
SEED_RULES = {"tesla", "qin-gang", "unbundling"}


def seed_story() -> EnrichedStory:
    return enriched_seed_story()


def syndicated_copy(original: EnrichedStory) -> EnrichedStory:
    url = "https://wire-partner.example.org/business/musk-beijing-visit"
    return original.model_copy(
        update={
            "id": story_id_for(url),
            "url": url,
            "feed": "wire-partner",
            "text": original.text + "\n\n(Reporting by the wire desk.)",
        }
    )


def publish_stories(settings: KafkaSettings, stories: list[EnrichedStory]) -> None:
    producer = Producer(settings)
    try:
        producer.publish([Output(settings.topics.enriched, s.id, s.to_bytes()) for s in stories])
    finally:
        producer.close()


def alerts_on(settings: KafkaSettings) -> list[Alert]:
    return [decode(Alert, m.value) for m in read_to_end(settings, settings.topics.alerts)]


def run_rules(
    settings: KafkaSettings,
    state_dir: Path,
    until: Callable[[Metrics], bool],
    *,
    rules_settings: RulesSettings | None = None,
    group_id: str | None = None,
    timeout: float = 60.0,
) -> Metrics:
    """The worker of `newsmon rules` in a thread, until `until(metrics)` holds."""
    metrics = Metrics(CollectorRegistry())
    store = AlertStore(state_dir / STORE_FILE)
    engine = RulesEngine(RULES, rules_settings or RulesSettings(), store, metrics)
    stage = RulesStage(engine, settings.topics.alerts)
    stop = threading.Event()
    runner = rules_runner(stage, settings, metrics, stop, group_id=group_id)
    worker = threading.Thread(target=run_worker, args=(runner, stage, stop), daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    try:
        while not until(metrics):
            if time.monotonic() > deadline:
                pytest.fail("the rules worker did not get there in time")
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(timeout=30)
    return metrics


def stories_checked(count: int) -> Callable[[Metrics], bool]:
    def done(metrics: Metrics) -> bool:
        sample = metrics.registry.get_sample_value
        checked = sum(
            sample("newsmon_stories_matched_total", {"matched": m}) or 0 for m in ("true", "false")
        )
        return checked >= count

    return done


def test_a_story_syndicated_under_two_urls_yields_one_alert_per_rule(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    original = seed_story()
    publish_stories(kafka_settings, [original, syndicated_copy(original)])

    metrics = run_rules(kafka_settings, tmp_path, stories_checked(2))

    alerts = alerts_on(kafka_settings)
    assert sorted(a.rule_id for a in alerts) == sorted(SEED_RULES)
    assert len({a.story.id for a in alerts}) == 1
    near = metrics.registry.get_sample_value(
        "newsmon_alerts_suppressed_total", {"reason": "near_duplicate"}
    )
    assert near == 3

    # A restart that reads everything again (new group, same state dir) raises nothing new.
    run_rules(kafka_settings, tmp_path, stories_checked(2), group_id=f"replay-{tmp_path.name}")
    assert len(alerts_on(kafka_settings)) == 3


def start_worker(
    settings: KafkaSettings, state_dir: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--settings", settings.model_dump_json(), "--rules", str(RULES),
         "--state-dir", str(state_dir), "--log", str(log), *extra],
    )  # fmt: skip


def wait_for_text(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} never appeared in {path}")
        time.sleep(0.1)


def killed_mid_record_and_restarted(
    kafka_settings: KafkaSettings, tmp_path: Path, hang: str
) -> list[Alert]:
    """Kill -9 the worker where `hang` stops it, restart it until idle; the first alerts."""
    log = tmp_path / "worker.log"
    worker = start_worker(kafka_settings, tmp_path, log, hang)
    wait_for_text(log, "published")
    first = alerts_on(kafka_settings)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert sorted(a.rule_id for a in first) == sorted(SEED_RULES)
    restarted = start_worker(kafka_settings, tmp_path, log, "--exit-when-idle")
    assert restarted.wait(timeout=120) == 0
    return first


def test_kill_9_between_publish_and_confirm_republishes_the_same_alerts(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    story = seed_story()
    publish_stories(kafka_settings, [story])

    first = killed_mid_record_and_restarted(kafka_settings, tmp_path, "--hang-before-confirm")

    # Each alert went out twice, byte for byte (receivers drop the copy by its webhook-id).
    first_copies = Counter(a.to_bytes() for a in first)
    assert Counter(a.to_bytes() for a in alerts_on(kafka_settings)) == first_copies + first_copies

    # The story comes back in a new record (re-polled): nothing more goes out.
    publish_stories(kafka_settings, [story])
    last = start_worker(kafka_settings, tmp_path, tmp_path / "worker.log", "--exit-when-idle")
    assert last.wait(timeout=120) == 0
    assert len(alerts_on(kafka_settings)) == 2 * len(first)


def test_kill_9_after_confirm_before_commit_sends_no_alert_twice(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Commits lag behind (`commit_interval_seconds`): a record read again after a kill
    finds its alerts confirmed, and nothing goes out twice."""
    publish_stories(kafka_settings, [seed_story()])

    first = killed_mid_record_and_restarted(kafka_settings, tmp_path, "--hang-before-commit")

    assert alerts_on(kafka_settings) == first
    store = AlertStore(tmp_path / STORE_FILE)
    try:
        assert (store.count("published"), store.count("pending")) == (3, 0)
    finally:
        store.close()


def distinct_tesla_story(number: int) -> EnrichedStory:
    base = seed_story()
    words = " ".join(f"filler{number}w{i}" for i in range(60))
    url = f"https://autos.example.net/tesla/{number}"
    return base.model_copy(
        update={
            "id": story_id_for(url),
            "url": url,
            "text": f"{base.text}\n\n{words}",
            "entities": base.entities,
        }
    )


def test_digest_goes_out_when_no_further_story_arrives(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    stories = [distinct_tesla_story(n) for n in range(3)]
    # Distinct enough not to be near-duplicates of each other at this threshold.
    throttled = RulesSettings(
        throttle_max_alerts=1, throttle_window_seconds=2, near_duplicate_threshold=0.99
    )
    publish_stories(kafka_settings, stories)

    def digest_out(_metrics: Metrics) -> bool:
        return any(a.kind == "digest" for a in alerts_on(kafka_settings))

    run_rules(kafka_settings, tmp_path, digest_out, rules_settings=throttled)

    by_rule: dict[str, list[Alert]] = {}
    for alert in alerts_on(kafka_settings):
        by_rule.setdefault(alert.rule_id, []).append(alert)
    assert set(by_rule) == SEED_RULES
    for alerts in by_rule.values():
        [alert, digest] = sorted(alerts, key=lambda a: a.kind)  # partitions interleave
        assert (alert.kind, digest.kind) == ("alert", "digest")
        assert len(digest.digest) == 2
        assert {alert.story.id, *(s.id for s in digest.digest)} == {s.id for s in stories}
