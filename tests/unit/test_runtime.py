"""/metrics and /healthz served for real on loopback; liveness of a worker loop;
structured log fields in JSON and in plain text."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Literal

import httpx
import pytest

from pipeline.config import LogSettings
from pipeline.metrics import Metrics, serve_metrics
from pipeline.runtime import (
    LOG_FIELDS,
    JsonFormatter,
    LateProbe,
    Liveness,
    TextFormatter,
    kafka_readiness,
    setup_logging,
)


def test_liveness_turns_unhealthy_when_the_loop_stops_beating() -> None:
    liveness = Liveness(max_silence=0.2)
    assert liveness()
    time.sleep(0.3)
    assert not liveness()
    liveness.beat()
    assert liveness()


def test_metrics_and_healthz_are_served() -> None:
    metrics = Metrics()
    metrics.polls.labels("ok").inc(3)
    healthy = {"now": True}
    server = serve_metrics(metrics, "127.0.0.1", 0, health=lambda: healthy["now"])
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        text = httpx.get(f"{base}/metrics").text
        assert 'newsmon_feed_polls_total{outcome="ok"} 3.0' in text
        assert httpx.get(f"{base}/healthz").status_code == 200
        healthy["now"] = False
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_readyz_answers_503_naming_the_clients_that_wait_for_kafka_while_healthz_stays_green() -> (
    None
):
    metrics = Metrics()
    server = serve_metrics(
        metrics, "127.0.0.1", 0, health=lambda: True, ready=kafka_readiness(metrics)
    )
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(f"{base}/readyz").status_code == 200  # no Kafka client: ready
        metrics.kafka_up.labels("extractor").set(0)
        metrics.kafka_up.labels("notifier-retry").set(1)
        answer = httpx.get(f"{base}/readyz")
        assert answer.status_code == 503
        assert "Kafka" in answer.text and "extractor" in answer.text
        assert "notifier-retry" not in answer.text
        assert httpx.get(f"{base}/healthz").status_code == 200
        metrics.kafka_up.labels("extractor").set(1)
        assert httpx.get(f"{base}/readyz").text == "ready\n"
    finally:
        server.shutdown()
        server.server_close()


def test_a_kafka_worker_is_not_ready_before_its_first_client_exists() -> None:
    metrics = Metrics()
    reason = kafka_readiness(metrics, expected=True)
    assert reason() == "not connected to Kafka yet"
    metrics.kafka_up.labels("rules").set(1)
    assert reason() is None
    assert kafka_readiness(Metrics())() is None  # newsmon run: no Kafka, ready


def test_a_late_probe_is_green_until_given_the_real_check() -> None:
    probe = LateProbe()
    assert probe()
    probe.use(lambda: False)
    assert not probe()


def record(message: str = "summary fallback", /, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "newsmon.test", "levelname": "INFO", "msg": message})
    for key, value in extra.items():
        setattr(made, key, value)
    return made


FIELDS: dict[str, object] = {
    "offset": 42, "feed": "bbc-world", "story_id": "s1", "alert_id": "a1", "rule": "tesla",
    "destination": "ops", "topic": "newsmon.alerts", "partition": 3, "reason": "too_short",
    "stage": "extractor",
}  # fmt: skip


def test_json_logs_carry_every_stable_key_as_a_field_in_a_fixed_order() -> None:
    entry = json.loads(JsonFormatter().format(record(**FIELDS, custom="x")))
    assert entry["message"] == "summary fallback"
    assert {k: entry[k] for k in FIELDS} == FIELDS
    keys = list(entry)
    assert keys[4 : 4 + len(LOG_FIELDS)] == list(LOG_FIELDS)
    assert keys[-1] == "custom"
    assert set(LOG_FIELDS) == set(FIELDS)


def test_text_logs_append_the_fields_as_key_value() -> None:
    line = TextFormatter().format(record(feed="BBC World", story_id="s1", partition=0))
    assert line.endswith('summary fallback feed="BBC World" story_id=s1 partition=0')


def test_text_logs_without_fields_are_the_plain_line() -> None:
    assert TextFormatter().format(record("idle")).endswith("INFO newsmon.test idle")


def test_an_exception_follows_the_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("handler failed", stage="rules")
        failed.exc_info = sys.exc_info()
    text = TextFormatter().format(failed)
    assert "handler failed stage=rules\nTraceback" in text
    entry = json.loads(JsonFormatter().format(failed))
    assert entry["stage"] == "rules"
    assert "ValueError: boom" in entry["exception"]


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_setup_logging_puts_extra_fields_in_the_chosen_format(
    fmt: Literal["json", "text"], capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(LogSettings(format=fmt))
    logging.getLogger("newsmon.test").info(
        "delivered", extra={"alert_id": "a9", "destination": "ops"}
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    if fmt == "json":
        entry = json.loads(line)
        assert (entry["message"], entry["alert_id"], entry["destination"]) == (
            "delivered",
            "a9",
            "ops",
        )
    else:
        assert line.endswith("delivered alert_id=a9 destination=ops")


@pytest.mark.usefixtures("restore_root_logger")
def test_the_metrics_port_line_reads_as_before_in_text_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tests and bench/pipeline_procs.py find a worker's port 0 choice by this line."""
    from pipeline.config import Settings
    from pipeline.runtime import start_metrics

    setup_logging(LogSettings())
    settings = Settings.model_validate({"metrics": {"host": "127.0.0.1", "port": 0}})
    server = start_metrics(settings, Metrics())
    assert server is not None
    try:
        port = server.server_address[1]
        assert f"metrics listening host=127.0.0.1 port={port}" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
