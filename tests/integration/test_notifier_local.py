"""The one-process mode: durable delivery with real HTTP on 127.0.0.1, no broker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from notifier_receiver import Receiver, make_alert
from standardwebhooks import Webhook

from pipeline.config import Destination, NotifierSettings
from pipeline.metrics import Metrics
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.journal import DeliveryJournal
from pipeline.notifier.local import LocalDelivery

pytestmark = pytest.mark.integration

SECRET = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
FAST_RETRIES = NotifierSettings(
    backoff_initial_seconds=0.05, backoff_max_seconds=0.3, handoff_after_seconds=1.0,
    timeout_seconds=2.0,
)  # fmt: skip


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    flaky, steady = Receiver(), Receiver()
    yield flaky, steady
    flaky.close()
    steady.close()


@contextmanager
def delivering(
    receivers: tuple[Receiver, Receiver], state: Path
) -> Iterator[tuple[LocalDelivery, Dispatcher]]:
    """One-process delivery to both receivers (not started), closed on the way out."""
    fast = {"rate_per_second": 100.0, "burst": 10}
    dests = [
        Destination(id=name, type="webhook", url=receiver.url(), secret=SECRET, **fast)
        for name, receiver in zip(("flaky", "steady"), receivers, strict=True)
    ]
    dispatcher = Dispatcher(dests, FAST_RETRIES, Metrics(), sleep=threading.Event().wait)
    local = LocalDelivery(dispatcher, state, dispatcher.metrics)
    try:
        yield local, dispatcher
    finally:
        local.close()
        dispatcher.close()


def test_outage_delays_only_its_destination_and_survives_a_restart(
    receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    flaky, steady = receivers
    flaky.always(503)
    with delivering(receivers, tmp_path) as (first, _):
        first.start()
        for n in range(5):
            assert first.submit(make_alert(n)) == 2
        # flaky's copy is pending, so it is never queued twice; steady's copy may
        # already be delivered, and then it is queued (and delivered) again
        requeued = first.submit(make_alert(0))
        assert requeued in (0, 1)
        assert steady.wait_for(5 + requeued, timeout=10)  # the healthy one is not held up
        assert first.pending() == 5
    journal = DeliveryJournal(tmp_path / "notifier" / "pending.jsonl")
    assert sorted(t.key for t in journal.open()) == [f"alert-{n:04d}/flaky" for n in range(5)]
    journal.close()

    flaky.always(200)
    with delivering(receivers, tmp_path) as (second, _):
        assert second.start() == 5
        assert second.wait_idle(timeout=15)
    ids = sorted(r.headers["webhook-id"] for r in flaky.accepted())
    assert ids == [f"alert-{n:04d}" for n in range(5)]  # each exactly once
    for request in flaky.accepted():
        Webhook(SECRET).verify(request.body, request.headers)
    assert len(steady.accepted()) == 5 + requeued


def test_permanent_failures_go_to_the_dead_letter_file(
    receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    flaky, _ = receivers
    flaky.always(404)
    with delivering(receivers, tmp_path) as (local, dispatcher):
        local.start()
        local.submit(make_alert(1))
        assert local.wait_idle(timeout=10)
    (line,) = (tmp_path / "notifier" / "dead-letters.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["destination"] == "flaky"
    assert entry["error"]["reason"] == "rejected"
    assert json.loads(entry["alert"])["alert_id"] == "alert-0001"
    assert (
        dispatcher.metrics.registry.get_sample_value(
            "newsmon_dead_letters_total", {"stage": "notifier", "reason": "rejected"}
        )
        == 1
    )


def test_close_is_prompt_while_a_destination_is_down(
    receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    flaky, _ = receivers
    flaky.always(503)
    with delivering(receivers, tmp_path) as (local, _):
        local.start()
        for n in range(20):
            local.submit(make_alert(n))
        time.sleep(0.5)
        started = time.monotonic()
    assert time.monotonic() - started < 3.0
