"""Delivery for the one-process mode (`newsmon run`): no broker, nothing lost.

`submit(alert)` writes the alert's deliveries to the journal and returns at
once; a background thread works through them with the same dispatcher, lanes
and retry rules as the Kafka worker. Deliveries still pending when the process
stops (or is killed) are in `<state_dir>/notifier/pending.jsonl` and are resumed
by the next `start`. Dead letters go to `<state_dir>/notifier/dead-letters.jsonl`
(one JSON object a line: the alert, the destination and the error), or to
`on_dead_letter` if given.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.corridor.records import Message, Result
from pipeline.errors import PipelineError
from pipeline.metrics import Metrics
from pipeline.models import Alert, decode
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.journal import DeliveryJournal, task_to_json
from pipeline.notifier.scheduler import DeliveryScheduler
from pipeline.notifier.tasks import STAGE, Delivered, DeliveryTask, GaveUp, Outcome

log = logging.getLogger(__name__)

IDLE_NAP_SECONDS = 1.0

DeadLetterSink = Callable[[DeliveryTask, PipelineError], None]


class HandOffStage:
    """The notifier's stage on the embedded queue: each alert into the delivery journal.

    The journal (with its scheduler) is to `newsmon run` what the retry topic is to the
    Kafka worker; the dispatcher, lanes and retry rules are the same. An alert that
    cannot be decoded is dead-lettered by the corridor, as on Kafka.
    """

    name = STAGE

    def __init__(self, delivery: LocalDelivery, shown: Callable[[Alert], None]) -> None:
        self.delivery = delivery
        self.shown = shown

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        return [self._hand_off(message) for message in messages]

    def _hand_off(self, message: Message) -> Result:
        try:
            alert = decode(Alert, message.value)
        except PipelineError as exc:
            return exc
        self.delivery.submit(alert, message.value)
        self.shown(alert)
        return []


class LocalDelivery:
    """Durable in-process delivery. Build the dispatcher with `sleep=stop.wait` so a stop
    also cuts rate-limit waits short."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        state_dir: Path,
        metrics: Metrics,
        *,
        on_dead_letter: DeadLetterSink | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.journal = DeliveryJournal(state_dir / "notifier" / "pending.jsonl")
        self.dead_letter_path = state_dir / "notifier" / "dead-letters.jsonl"
        self._on_dead_letter = on_dead_letter or self._write_dead_letter
        self.scheduler: DeliveryScheduler[str] = DeliveryScheduler(dispatcher)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifier-local", daemon=True)

    def start(self) -> int:
        """Resume what the journal holds and start delivering; returns the deliveries resumed."""
        resumed = self.journal.open()
        for task in resumed:
            self.scheduler.add(task, task.key)
        self._thread.start()
        if resumed:
            log.info("resuming deliveries", extra={"stage": STAGE, "pending": len(resumed)})
        return len(resumed)

    def submit(self, alert: Alert, payload: bytes | None = None) -> int:
        """Queue an alert for its destinations; returns how many deliveries were queued
        (an alert already pending for a destination is not queued twice)."""
        queued = 0
        for task in self.dispatcher.tasks_for(alert, payload):
            if task.key in self.journal:
                continue
            self.journal.put(task)
            self.scheduler.add(task, task.key)
            queued += 1
        return queued

    def pending(self) -> int:
        return len(self.journal)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no delivery is pending (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _run(self) -> None:
        while not self._closing.is_set():
            self._settle_finished()
            self.scheduler.start_due()
            self.scheduler.wait(self._nap())
        self._settle_finished()

    def _nap(self) -> float:
        due = self.scheduler.next_due()
        if due is None:
            return IDLE_NAP_SECONDS
        return min(max(due - self.dispatcher.clock(), 0.0), IDLE_NAP_SECONDS)

    def _settle_finished(self) -> None:
        for key, outcome in self.scheduler.finished():
            self._settle(key, outcome)

    def _settle(self, key: str, outcome: Outcome) -> None:
        if isinstance(outcome, Delivered):
            self.journal.done(key)
        elif isinstance(outcome, GaveUp):
            self.metrics.dead_letters.labels(STAGE, outcome.error.reason).inc()
            self._on_dead_letter(outcome.task, outcome.error)
            self.journal.done(key)
        else:
            if outcome.attempted:
                self.journal.put(outcome.task)
            self.scheduler.add(outcome.task, key)

    def _write_dead_letter(self, task: DeliveryTask, error: PipelineError) -> None:
        entry = {
            **task_to_json(task),
            "error": {"reason": error.reason, "type": type(error).__name__, "message": str(error)},
            "dead_lettered_at": self.dispatcher.clock(),
        }
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letter_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def close(self) -> None:
        """Stop after the attempts in flight; what is still pending stays in the journal."""
        self._closing.set()
        self.scheduler.wake()
        if self._thread.is_alive():
            self._thread.join()
        self.scheduler.close()
        self._settle_finished()
        self.journal.close()
