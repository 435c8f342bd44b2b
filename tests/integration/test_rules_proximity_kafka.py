"""`newsmon rules` on a real broker with proximity rules: the seed story in, their alerts out."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from proximity_scenario import EXPECTED, PROXIMITY_RULES, check_alerts, write_rules
from seed import enriched_seed_story
from test_backtest_kafka import child_env, rules_worker

from pipeline.config import KafkaSettings
from pipeline.console.rule_edit import save_rules
from pipeline.corridor.kafka.clients import Producer, read_to_end
from pipeline.corridor.records import Output
from pipeline.models import Alert, decode

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_proximity_rules_fire_through_the_kafka_worker(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path)
    story = enriched_seed_story()
    producer = Producer(kafka_settings)
    try:
        producer.publish([Output(kafka_settings.topics.enriched, story.id, story.to_bytes())])
    finally:
        producer.close()
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        worker = subprocess.Popen(
            rules_worker(rules, tmp_path / "state"),
            env=child_env(kafka_settings, NEWSMON_RULES__RELOAD_CHECK_SECONDS="0.5"), cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            alerts: list[Alert] = []
            deadline = time.monotonic() + 180
            while len(alerts) < len(EXPECTED) and time.monotonic() < deadline:
                time.sleep(1)
                alerts = [
                    decode(Alert, m.value)
                    for m in read_to_end(kafka_settings, kafka_settings.topics.alerts)
                ]
                assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            # An atomic save (the console's) is taken up on the idle stream too.
            save_rules(rules, PROXIMITY_RULES + "  - id: ukraine\n    terms: [Ukraine]\n")
            while "rules reloaded" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline, "the saved rules file was not reloaded"
                assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    check_alerts(alerts)
