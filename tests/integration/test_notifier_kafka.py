"""`newsmon notifier` on a real broker, delivering to receivers on 127.0.0.1."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient
from kafka_checks import committed, ends
from notifier_receiver import Receiver, make_alert
from standardwebhooks import Webhook

from pipeline.config import Destination, KafkaSettings, NotifierSettings, Settings
from pipeline.corridor.kafka.clients import Producer, read_to_end
from pipeline.corridor.records import Message, Output
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.notifier.delivered import DeliveredLedger, open_ledger
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.records import H_DESTINATION
from pipeline.notifier.worker import NotifierWorker

pytestmark = pytest.mark.integration

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLW5ld3Ntb24tbm90aWZpZXI="
FAST = {"rate_per_second": 200.0, "burst": 20}
QUICK_RETRIES = {
    "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5, "handoff_after_seconds": 1.0,
    "timeout_seconds": 2.0,
}  # fmt: skip


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def steady() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def webhook(ident: str, receiver: Receiver) -> Destination:
    return Destination(
        id=ident, type="webhook", url=receiver.url(f"/{ident}"), secret=SECRET, **FAST
    )


def settings_for(
    kafka: KafkaSettings, destinations: list[Destination], **notifier: float
) -> Settings:
    values = {**QUICK_RETRIES, **notifier, "destinations": destinations}
    return Settings(kafka=kafka, notifier=NotifierSettings.model_validate(values))


def publish_alerts(kafka: KafkaSettings, alerts: list[Alert], extra: Sequence[bytes] = ()) -> None:
    producer = Producer(kafka)
    outputs = [Output(kafka.topics.alerts, a.story.id, a.to_bytes()) for a in alerts]
    outputs += [Output(kafka.topics.alerts, b"junk", value) for value in extra]
    producer.publish(outputs)
    producer.close()


@contextmanager
def running(settings: Settings, ledger: DeliveredLedger | None = None) -> Iterator[Metrics]:
    """A notifier worker in this process; with `ledger`, remembering what it delivered."""
    stop, metrics = threading.Event(), Metrics()
    dispatcher = Dispatcher(
        settings.notifier.destinations, settings.notifier, metrics, sleep=stop.wait, ledger=ledger
    )
    worker = NotifierWorker(settings, metrics, stop, dispatcher)
    worker.start()
    try:
        yield metrics
    finally:
        stop.set()
        worker.join()
        dispatcher.close()


def assert_all_committed(kafka: KafkaSettings) -> None:
    """Every record of the alerts and retry topics is committed (none would be read again)."""
    prefix, topics = kafka.group_prefix, kafka.topics
    alerts = committed(kafka, f"{prefix}-notifier", topics.alerts)
    assert alerts == ends(kafka, topics.alerts)
    retry_ends = ends(kafka, topics.delivery_retry)
    assert committed(kafka, f"{prefix}-notifier-retry", topics.delivery_retry) == retry_ends


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_outage_of_one_destination_delays_only_it_and_loses_nothing(
    kafka_settings: KafkaSettings, flaky: Receiver, steady: Receiver
) -> None:
    alerts = [make_alert(n) for n in range(20)]
    settings = settings_for(kafka_settings, [webhook("flaky", flaky), webhook("steady", steady)])
    outage_ends = flaky.down_for(5.0, 503, {"Retry-After": "1"})
    publish_alerts(kafka_settings, alerts)
    with running(settings) as metrics:
        assert steady.wait_for(20, timeout=30)
        assert time.time() < outage_ends  # the healthy destination did not wait for the other
        assert flaky.wait_for(20, timeout=40)
        time.sleep(1.0)  # room for a duplicate to show up
    ids = collections.Counter(r.headers["webhook-id"] for r in flaky.accepted())
    assert ids == collections.Counter(a.alert_id for a in alerts)  # every alert exactly once
    assert all(r.at >= outage_ends for r in flaky.accepted())
    for request in flaky.accepted() + steady.accepted():
        Webhook(SECRET).verify(request.body, request.headers)
    assert list(read_to_end(kafka_settings, kafka_settings.topics.dead_letter)) == []
    assert_all_committed(kafka_settings)
    assert (
        sample(metrics, "newsmon_deliveries_total", destination="flaky", outcome="delivered") == 20
    )
    assert sample(metrics, "newsmon_delivery_retries_total", destination="flaky") >= 1
    assert sample(metrics, "newsmon_end_to_end_seconds_count") == 40


def test_undeliverable_alerts_are_dead_lettered_per_destination(
    kafka_settings: KafkaSettings, flaky: Receiver, steady: Receiver
) -> None:
    flaky.always(410)
    steady.always(500)
    alerts = [make_alert(n) for n in range(3)]
    destinations = [webhook("gone", flaky), webhook("broken", steady)]
    settings = settings_for(kafka_settings, destinations, retry_budget_seconds=2.0)
    publish_alerts(kafka_settings, alerts, extra=[b"not an alert"])
    with running(settings) as metrics:
        letters = wait_for_dead_letters(kafka_settings, 7, timeout=40)
    by_reason = collections.defaultdict(list)
    for letter in letters:
        by_reason[letter.header("newsmon.error.reason")].append(letter)
    assert {k: len(v) for k, v in by_reason.items()} == {
        b"rejected": 3, b"retry_budget": 3, b"decode": 1,
    }  # fmt: skip
    assert {m.header(H_DESTINATION) for m in by_reason[b"rejected"]} == {b"gone"}
    assert {m.header(H_DESTINATION) for m in by_reason[b"retry_budget"]} == {b"broken"}
    assert sorted(m.value for m in by_reason[b"rejected"]) == sorted(a.to_bytes() for a in alerts)
    assert by_reason[b"decode"][0].value == b"not an alert"
    assert len(flaky.requests) == 3  # a refusal is final: no retry
    assert_all_committed(kafka_settings)
    assert (
        sample(metrics, "newsmon_dead_letters_total", stage="notifier", reason="retry_budget") == 3
    )


def wait_for_dead_letters(kafka: KafkaSettings, count: int, timeout: float) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        letters = list(read_to_end(kafka, kafka.topics.dead_letter))
        if len(letters) >= count or time.monotonic() > deadline:
            return letters
        time.sleep(0.5)


def write_config(tmp_path: Path, kafka: KafkaSettings, receiver: Receiver) -> list[str]:
    config = {
        "kafka": {**kafka.model_dump(mode="json"), "sasl_password": None},
        "notifier": {
            **QUICK_RETRIES,
            "destinations": [
                {"id": "hook", "type": "webhook", "url": receiver.url(), "secret": SECRET, **FAST}
            ],
        },
        "metrics": {"enabled": False},
        "log": {"level": "INFO"},
    }
    (tmp_path / "newsmon.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    return [
        sys.executable, "-m", "pipeline.cli", "notifier",
        "--config", str(tmp_path / "newsmon.yaml"), "--feeds", str(tmp_path / "feeds.yaml"),
        "--rules", str(tmp_path / "rules.yaml"), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip


def start(command: list[str], tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_kill_9_during_an_outage_loses_nothing(
    kafka_settings: KafkaSettings, flaky: Receiver, tmp_path: Path
) -> None:
    command = write_config(tmp_path, kafka_settings, flaky)
    alerts = [make_alert(n) for n in range(10)]
    flaky.always(503)
    publish_alerts(kafka_settings, alerts)
    first = start(command, tmp_path, "first")
    try:
        deadline = time.monotonic() + 60
        while len({r.headers["webhook-id"] for r in flaky.requests}) < 10:
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # let retries circulate: records held, re-queued, half-committed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    flaky.always(200)
    second = start(command, tmp_path, "second")
    try:
        deadline = time.monotonic() + 60
        while {r.headers["webhook-id"] for r in flaky.accepted()} != {a.alert_id for a in alerts}:
            assert time.monotonic() < deadline, (tmp_path / "second.log").read_text()
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, (tmp_path / "second.log").read_text()
    for request in flaky.accepted():
        Webhook(SECRET).verify(request.body, request.headers)
    assert json.loads(flaky.accepted()[0].body)["schema_version"] == 1
    repeats = len(flaky.accepted()) - len(alerts)
    print(f"kill -9: {len(alerts)} alerts, {repeats} delivered twice (same webhook-id)")
    assert repeats == 0  # the delivery ledger in --state-dir (without it: 0 or 1 here)


@pytest.mark.slow
def test_replicas_share_the_work_and_a_leaving_one_hands_over(
    kafka_settings: KafkaSettings, flaky: Receiver
) -> None:
    alerts = [make_alert(n) for n in range(30)]
    settings = settings_for(kafka_settings, [webhook("flaky", flaky)])
    flaky.down_for(4.0, 503)
    publish_alerts(kafka_settings, alerts)
    with running(settings):
        with running(settings):  # a second replica joins, then leaves mid-outage
            time.sleep(2.0)
        assert flaky.wait_for(30, timeout=60)
        time.sleep(1.0)
    ids = collections.Counter(r.headers["webhook-id"] for r in flaky.accepted())
    assert set(ids) == {a.alert_id for a in alerts}
    assert_all_committed(kafka_settings)
    print(f"two replicas: {sum(ids.values()) - len(ids)} of {len(ids)} delivered twice")


def forget_commits(kafka: KafkaSettings, group: str) -> None:
    """As if the worker had been killed before committing anything: all is read again."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        admin.delete_groups([group])
    finally:
        admin.close()


def test_an_alert_read_again_is_not_delivered_again(
    kafka_settings: KafkaSettings, steady: Receiver, tmp_path: Path
) -> None:
    """Read again after a crash before the commit (here: the group's commits deleted), or
    re-published by the rules stage (same alert id, new offset): delivered once."""
    settings = settings_for(kafka_settings, [webhook("steady", steady)])
    alerts = [make_alert(n) for n in range(5)]
    publish_alerts(kafka_settings, alerts)
    with running(settings, open_ledger(tmp_path, settings.notifier)):
        assert steady.wait_for(5, timeout=30)
    forget_commits(kafka_settings, f"{kafka_settings.group_prefix}-notifier")
    publish_alerts(kafka_settings, [*alerts[:2], make_alert(5)])
    with running(settings, open_ledger(tmp_path, settings.notifier)) as metrics:
        assert steady.wait_for(6, timeout=30)
        deadline = time.monotonic() + 30
        while (
            sample(metrics, "newsmon_deliveries_total", destination="steady",
                   outcome="already_delivered") < 7
        ):  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.1)
    ids = collections.Counter(r.headers["webhook-id"] for r in steady.accepted())
    assert ids == {a.alert_id: 1 for a in [*alerts, make_alert(5)]}
    assert_all_committed(kafka_settings)
