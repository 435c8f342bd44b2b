"""The delivery decisions, with scripted adapters and a clock the test moves."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from notifier_alerts import FAST, Scripted, down, make_alert

from pipeline.config import Destination, NotifierSettings
from pipeline.errors import DeliveryError
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.notifier.dispatch import Dispatcher, run_lanes
from pipeline.notifier.tasks import Delivered, DeliveryTask, GaveUp, Later


class Clock:
    def __init__(self) -> None:
        self.now = 1_714_650_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.now += seconds
        return False


def make(
    adapters: dict[str, Scripted], clock: Clock, metrics: Metrics | None = None, **settings: float
) -> Dispatcher:
    destinations = [
        Destination.model_validate({"id": d, "type": "apprise", "url": "json://x", **FAST})
        for d in adapters
    ]
    values = {"backoff_initial_seconds": 1.0, "backoff_max_seconds": 60.0, **settings}
    return Dispatcher(
        destinations, NotifierSettings.model_validate(values), metrics or Metrics(),
        clock=clock, sleep=clock.sleep, rng=random.Random(5), adapters=adapters,
    )  # fmt: skip


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def only(dispatcher: Dispatcher, alert: Alert | None = None) -> DeliveryTask:
    (task,) = dispatcher.tasks_for(alert or make_alert())
    return task


def test_tasks_for_all_destinations_or_those_named() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted(), "b": Scripted()}, clock)
    assert [t.destination for t in dispatcher.tasks_for(make_alert())] == ["a", "b"]
    named = dispatcher.tasks_for(make_alert(notify=["b"]))
    assert [(t.destination, t.queued_at, t.attempts) for t in named] == [("b", clock.now, 0)]
    assert named[0].payload == named[0].alert.to_bytes()


def test_delivery_counts_metrics_and_end_to_end_latency() -> None:
    clock, metrics, adapter = Clock(), Metrics(), Scripted()
    dispatcher = make({"a": adapter}, clock, metrics)
    outcome = dispatcher.attempt(only(dispatcher), wait_until=clock.now + 5)
    assert isinstance(outcome, Delivered)
    assert adapter.sent == ["alert-1"]
    assert sample(metrics, "newsmon_deliveries_total", destination="a", outcome="delivered") == 1
    assert sample(metrics, "newsmon_delivery_seconds_count", destination="a") == 1
    first_seen = make_alert().first_seen.timestamp()
    assert sample(metrics, "newsmon_end_to_end_seconds_sum") == pytest.approx(
        clock.now - first_seen
    )


def test_permanent_failure_gives_up_at_once() -> None:
    clock, metrics = Clock(), Metrics()
    dispatcher = make(
        {"a": Scripted([DeliveryError("HTTP 400", reason="rejected")])}, clock, metrics
    )
    outcome = dispatcher.attempt(only(dispatcher), clock.now + 5)
    assert isinstance(outcome, GaveUp)
    assert outcome.error.reason == "rejected"
    assert sample(metrics, "newsmon_deliveries_total", destination="a", outcome="dead_letter") == 1


def test_failure_schedules_a_retry_and_rests_the_destination() -> None:
    clock, metrics = Clock(), Metrics()
    adapter = Scripted([down(retry_after=10.0)])
    dispatcher = make({"a": adapter}, clock, metrics)
    first = dispatcher.attempt(only(dispatcher, make_alert(1)), clock.now + 5)
    assert isinstance(first, Later) and first.attempted
    assert first.task.attempts == 1
    assert first.task.last_error == "server_error"
    assert first.task.not_before >= clock.now + 10.0  # Retry-After honoured
    assert sample(metrics, "newsmon_delivery_retries_total", destination="a") == 1
    # Another alert meanwhile is not sent: the destination rests until its retry time.
    second = dispatcher.attempt(only(dispatcher, make_alert(2)), clock.now + 5)
    assert isinstance(second, Later) and not second.attempted
    assert second.reason == "destination_down"
    assert second.task.attempts == 0
    assert second.task.not_before < first.task.not_before  # the failed one goes behind it
    assert adapter.sent == ["alert-1"]


def test_probes_during_an_outage_do_not_use_up_attempts() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted([down()] * 50)}, clock, max_attempts=3)
    task = only(dispatcher)
    for _ in range(20):
        clock.now = max(clock.now, task.not_before)
        outcome = dispatcher.attempt(task, clock.now + 5)
        assert isinstance(outcome, Later)
        task = outcome.task
    assert task.attempts == 1  # only the failure that opened the outage counted


def test_an_alert_failing_while_others_succeed_runs_out_of_attempts() -> None:
    clock, metrics = Clock(), Metrics()
    # alert-1 always fails; alert-2 succeeds in between, so the destination is healthy.
    results: list[Exception | None] = []
    for _ in range(3):
        results += [down(), None]
    dispatcher = make({"a": Scripted(results)}, clock, metrics, max_attempts=3)
    poison = only(dispatcher, make_alert(1))
    outcome = None
    for n in range(3):
        clock.now = max(clock.now, poison.not_before)
        outcome = dispatcher.attempt(poison, clock.now + 5)
        assert isinstance(deliver_soon(dispatcher, clock, make_alert(10 + n)), Delivered)
        if isinstance(outcome, Later):
            poison = outcome.task
    assert isinstance(outcome, GaveUp)
    assert outcome.error.reason == "max_attempts"
    assert outcome.task.attempts == 3


def deliver_soon(dispatcher: Dispatcher, clock: Clock, alert: Alert) -> object:
    """Attempt, waiting out the destination's rest: the outcome of the first real attempt."""
    outcome = dispatcher.attempt(only(dispatcher, alert), clock.now + 5)
    while isinstance(outcome, Later) and not outcome.attempted:
        clock.now = max(clock.now, outcome.task.not_before)
        outcome = dispatcher.attempt(outcome.task, clock.now + 5)
    return outcome


def test_retry_budget_ends_the_wait() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted([down()] * 100)}, clock, retry_budget_seconds=300)
    task = only(dispatcher)
    outcome = dispatcher.attempt(task, clock.now + 5)
    while isinstance(outcome, Later):
        clock.now = max(clock.now, outcome.task.not_before)
        outcome = dispatcher.attempt(outcome.task, clock.now + 5)
    assert isinstance(outcome, GaveUp)
    assert outcome.error.reason == "retry_budget"
    assert clock.now - task.queued_at <= 300


def test_unknown_destination_is_dead_lettered() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted()}, clock)
    (task,) = dispatcher.tasks_for(make_alert(notify=["gone"]))
    outcome = dispatcher.attempt(task, clock.now + 5)
    assert isinstance(outcome, GaveUp)
    assert outcome.error.reason == "unknown_destination"


def test_adapter_crash_is_retried_not_lost() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted([RuntimeError("bug")])}, clock)
    outcome = dispatcher.attempt(only(dispatcher), clock.now + 5)
    assert isinstance(outcome, Later) and outcome.reason == "crash"


def test_rate_limit_waits_for_a_token_or_defers_past_the_deadline() -> None:
    clock = Clock()
    destination = Destination(id="slack", type="apprise", url="json://x", rate_per_second=1.0)
    adapter = Scripted()
    dispatcher = Dispatcher(
        [destination], NotifierSettings(), Metrics(), clock=clock, sleep=clock.sleep,
        adapters={"slack": adapter},
    )  # fmt: skip
    start = clock.now
    tasks = [only(dispatcher, make_alert(n)) for n in range(5)]
    outcomes = dispatcher.run_lane(tasks, wait_until=start + 2.5)
    assert [type(o).__name__ for o in outcomes] == ["Delivered"] * 3 + ["Later"] * 2
    assert clock.now == pytest.approx(start + 2.0)  # one a second
    deferred = outcomes[3]
    assert isinstance(deferred, Later) and deferred.reason == "rate_limited"
    assert deferred.task.not_before == pytest.approx(start + 3.0)
    assert adapter.sent == ["alert-0", "alert-1", "alert-2"]


def test_deliver_retries_in_process_until_settled() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted([down(), down(), None]), "b": Scripted()}, clock)
    outcomes = dispatcher.deliver(make_alert(), until=clock.now + 600)
    assert {d: type(o).__name__ for d, o in outcomes.items()} == {
        "a": "Delivered",
        "b": "Delivered",
    }


def test_deliver_returns_what_is_still_pending_at_the_deadline() -> None:
    clock = Clock()
    dispatcher = make({"a": Scripted([down()] * 100)}, clock)
    outcome = dispatcher.deliver(make_alert(), until=clock.now + 5)["a"]
    assert isinstance(outcome, Later)
    assert outcome.task.last_error == "server_error"


class Blocking:
    """Hangs until released, like a destination that does not answer."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def deliver(self, alert: Alert) -> None:
        self.release.wait(10)

    def close(self) -> None:
        pass


def test_a_hanging_destination_does_not_hold_up_the_others() -> None:
    hanging, quick = Blocking(), Scripted()
    destinations = [
        Destination(id="slow", type="apprise", url="json://x", **FAST),
        Destination(id="fast", type="apprise", url="json://x", **FAST),
    ]
    dispatcher = Dispatcher(
        destinations, NotifierSettings(), Metrics(), adapters={"slow": hanging, "fast": quick}
    )
    tasks = [t for n in range(20) for t in dispatcher.tasks_for(make_alert(n))]
    with ThreadPoolExecutor(max_workers=2) as pool, ThreadPoolExecutor(max_workers=1) as host:
        future = host.submit(run_lanes, dispatcher, tasks, time.time() + 5, pool)
        deadline = time.monotonic() + 5
        while len(quick.sent) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(quick.sent) == 20  # all delivered while "slow" still hangs on its first
        assert not future.done()
        hanging.release.set()
        outcomes = future.result(timeout=10)
    assert [o.task.destination for o in outcomes] == [t.destination for t in tasks]
