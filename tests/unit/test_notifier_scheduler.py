from __future__ import annotations

import threading
import time

from notifier_alerts import FAST, Scripted, down, make_alert

from pipeline.config import Destination, NotifierSettings
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.scheduler import DeliveryScheduler
from pipeline.notifier.tasks import Delivered, Later, Outcome


class Gate(Scripted):
    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()

    def deliver(self, alert: Alert) -> None:
        self.open.wait(10)
        super().deliver(alert)


def dispatcher(adapters: dict[str, Scripted]) -> Dispatcher:
    destinations = [Destination(id=d, type="apprise", url="json://x", **FAST) for d in adapters]
    return Dispatcher(destinations, NotifierSettings(), Metrics(), adapters=adapters)


def collect(scheduler: DeliveryScheduler[str], count: int) -> list[tuple[str, Outcome]]:
    results: list[tuple[str, Outcome]] = []
    deadline = time.monotonic() + 10
    while len(results) < count and time.monotonic() < deadline:
        scheduler.wait(0.05)
        results += scheduler.finished()
    return results


def test_lanes_run_per_destination_and_a_stuck_one_keeps_its_own_tasks() -> None:
    gate, quick = Gate(), Scripted()
    d = dispatcher({"stuck": gate, "quick": quick})
    scheduler: DeliveryScheduler[str] = DeliveryScheduler(d, batch_size=2)
    try:
        for n in range(5):
            for task in d.tasks_for(make_alert(n)):
                scheduler.add(task, task.key)
        assert len(scheduler) == 10
        results: list[tuple[str, Outcome]] = []
        while len(results) < 5:  # quick goes two at a time; stuck holds its first batch
            scheduler.start_due()
            results += collect(scheduler, 1)
        assert {k for k, _ in results} == {f"alert-{n}/quick" for n in range(5)}
        assert all(isinstance(o, Delivered) for _, o in results)
        assert scheduler.busy and len(scheduler) == 5
        assert scheduler.next_due() is None  # stuck's lane is busy: nothing more to start
        gate.open.set()
        while len(results) < 10:
            scheduler.start_due()
            results += collect(scheduler, 1)
        assert sorted(gate.sent) == [f"alert-{n}" for n in range(5)]
    finally:
        gate.open.set()
        scheduler.close()


def test_tasks_wait_for_their_time_and_can_be_discarded() -> None:
    d = dispatcher({"a": Scripted([down()])})
    scheduler: DeliveryScheduler[str] = DeliveryScheduler(d)
    try:
        (early,) = d.tasks_for(make_alert(1))
        (late,) = d.tasks_for(make_alert(2))
        late_due = time.time() + 3600
        scheduler.add(late.deferred(late_due), "late")
        scheduler.add(early, "early")
        assert scheduler.start_due() == 1
        ((token, outcome),) = collect(scheduler, 1)
        assert token == "early" and isinstance(outcome, Later) and outcome.attempted
        assert scheduler.next_due() == late_due
        assert scheduler.discard({"late"}) == 1
        assert len(scheduler) == 0 and scheduler.next_due() is None
    finally:
        scheduler.close()
