"""`newsmon notifier` on Kafka: an alerts loop and a retry loop in one process.

The alerts loop (a `StageRunner`) tries every new alert once on each of its
destinations, every destination on its own lane; what cannot be delivered
within `handoff_after_seconds` goes to the retry topic, what can never be
delivered to the dead-letter topic, and only then is the alert's offset
committed. The retry loop reads the retry topic into a local schedule, keeps
polling while records wait for their time, and commits a partition only up to
its earliest record not yet settled (delivered, dead-lettered or re-queued with
its next attempt). A destination that is down therefore costs the others nothing,
and a worker killed at any point loses nothing. What it reads again is not sent
again when the dispatcher has a delivery ledger (`delivered.py`, as `newsmon
notifier` gives it): only a kill between a destination's answer and the ledger's
write sends an alert twice, with the same `webhook-id`.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

from pipeline.config import KafkaSettings, Settings
from pipeline.corridor.kafka.transport import KafkaTransport, StageRunner
from pipeline.corridor.records import Message, Output, Partition
from pipeline.corridor.runner import run_until_stopped
from pipeline.corridor.settle import dead_letter_output, publish_until_stopped
from pipeline.errors import PipelineError
from pipeline.metrics import Metrics
from pipeline.notifier.delivered import DeliveredLedger
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.records import task_from_retry
from pipeline.notifier.scheduler import DeliveryScheduler
from pipeline.notifier.stage import AlertStage, settle_output
from pipeline.notifier.tasks import STAGE, Later, Outcome

log = logging.getLogger(__name__)

HOLD_SECONDS = 60.0  # a retry record not sent yet is kept in memory if due this soon
MAX_HELD = 10_000  # retry records held in memory before the retry topic is paused
BUSY_POLL_SECONDS = 0.05


class RetryRunner:
    """The retry loop: holds retry records until their time, then tries them again."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: KafkaSettings,
        metrics: Metrics,
        stop: threading.Event,
        *,
        group_id: str | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.metrics = metrics
        self.stop = stop
        self.scheduler: DeliveryScheduler[int] = DeliveryScheduler(dispatcher)
        self._held: dict[int, Message] = {}
        self._ids = itertools.count()
        self._paused = False
        self.transport = KafkaTransport(
            settings, [settings.topics.delivery_retry],
            group_id or f"{settings.group_prefix}-{STAGE}-retry", f"{STAGE}-retry", metrics,
            stop=stop,
        )  # fmt: skip
        self.transport.on_revoked = self._revoked

    def run(self) -> None:
        log.info("retry loop started", extra={"topic": self.settings.topics.delivery_retry})
        run_until_stopped(self)

    def run_once(self, timeout: float | None = None) -> int:
        """One poll, start what is due, settle what finished, commit; returns records settled."""
        wait = self._poll_wait() if timeout is None else timeout
        outputs: list[Output] = []
        settled: list[int] = []
        for message in self.transport.poll(wait):
            self._admit(message, outputs, settled)
        self.scheduler.start_due()
        self._settle(self.scheduler.finished(), outputs, settled)
        self._finish(outputs, settled)
        self._flow_control()
        return len(settled)

    def _poll_wait(self) -> float:
        if self.scheduler.busy:
            return BUSY_POLL_SECONDS
        due = self.scheduler.next_due()
        limit = self.settings.poll_timeout_seconds
        return limit if due is None else min(max(due - self.dispatcher.clock(), 0.0), limit)

    def _admit(self, message: Message, outputs: list[Output], settled: list[int]) -> None:
        token = next(self._ids)
        self._held[token] = message
        try:
            task = task_from_retry(message)
        except PipelineError as exc:
            log.warning(
                "damaged retry record",
                extra={"stage": STAGE, "partition": message.partition, "offset": message.offset,
                       "reason": exc.reason},
            )  # fmt: skip
            self.metrics.dead_letters.labels(STAGE, exc.reason).inc()
            dead = self.settings.topics.dead_letter
            outputs.append(dead_letter_output(dead, STAGE, message, exc, 0))
            settled.append(token)
            return
        self.scheduler.add(task, token)

    def _settle(
        self, finished: list[tuple[int, Outcome]], outputs: list[Output], settled: list[int]
    ) -> None:
        now = self.dispatcher.clock()
        for token, outcome in finished:
            message = self._held.get(token)
            if message is None:  # its partition moved to another worker meanwhile
                continue
            if isinstance(outcome, Later) and _keep(outcome, now):
                self.scheduler.add(outcome.task, token)
                continue
            output = settle_output(self.settings, self.metrics, message, outcome)
            if output is not None:
                outputs.append(output)
            settled.append(token)

    def _finish(self, outputs: list[Output], settled: list[int]) -> None:
        """Publish, then acknowledge: never commit past unpublished output."""
        published = publish_until_stopped(
            self.transport.publish, outputs, self.stop,
            backoff_seconds=self.settings.retry_backoff_seconds, stage=STAGE,
        )  # fmt: skip
        if not published:
            return
        done = [self._held.pop(token) for token in settled if token in self._held]
        self.transport.acknowledge(done)

    def _revoked(self, partitions: set[Partition]) -> None:
        """Let go of what is held: the next owner re-reads it from the commit point (the
        transport rewound the consumer there). What a failed commit left behind is
        delivered again, with the same webhook-id."""
        gone = {t for t, m in self._held.items() if (m.topic, m.partition) in partitions}
        self.scheduler.discard(gone)
        for token in gone:
            del self._held[token]
        log.info(
            "retry partitions revoked",
            extra={"stage": STAGE, "partition": sorted(partitions), "released": len(gone)},
        )

    def _flow_control(self) -> None:
        held = len(self._held)
        if not self._paused and held >= MAX_HELD:
            self.transport.pause()
            self._paused = True
            log.warning("retry topic paused", extra={"stage": STAGE, "held": held})
        elif self._paused and held < MAX_HELD // 2:
            self.transport.resume()
            self._paused = False

    def close(self) -> None:
        """Let running lanes finish, settle their outcomes, then leave the group."""
        try:
            self.scheduler.close()
            outputs: list[Output] = []
            settled: list[int] = []
            self._settle(self.scheduler.finished(), outputs, settled)
            self._finish(outputs, settled)
        finally:
            self.transport.close()
        log.info("retry loop stopped", extra={"stage": STAGE})


def _keep(outcome: Later, now: float) -> bool:
    """Keep a not-yet-sent delivery in memory if it is due soon; else re-queue it on Kafka."""
    return not outcome.attempted and outcome.task.not_before - now <= HOLD_SECONDS


def _restorer(ledger: DeliveredLedger) -> Callable[[set[Partition]], None]:
    """Partition p of the alerts and of the retry topic hold the same alerts (both keyed
    by alert id): either assignment replays the ledger's partition p."""

    def restore(partitions: set[Partition]) -> None:
        ledger.restore({p for _, p in partitions})

    return restore


class NotifierWorker:
    """Both loops on their own threads; if either dies the other is stopped too."""

    def __init__(
        self, settings: Settings, metrics: Metrics, stop: threading.Event, dispatcher: Dispatcher
    ) -> None:
        self.stop = stop
        kafka = settings.kafka
        self._stage = AlertStage(dispatcher, kafka, metrics)
        alerts = StageRunner(
            self._stage, kafka, [kafka.topics.alerts], metrics, stop,
            chunk_size=kafka.max_poll_records,
        )  # fmt: skip
        retries = RetryRunner(dispatcher, kafka, metrics, stop)
        if dispatcher.ledger is not None:  # restored before a partition's records are tried
            restore = _restorer(dispatcher.ledger)
            alerts.kafka.on_assigned = restore
            retries.transport.on_assigned = restore
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._guard(alerts.run), name="notifier-alerts"),
            threading.Thread(target=self._guard(retries.run), name="notifier-retries"),
        ]

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                log.exception("notifier loop crashed", extra={"stage": STAGE,
                              "thread": threading.current_thread().name})  # fmt: skip
                self._errors.append(exc)
                self.stop.set()

        return run

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def healthy(self) -> bool:
        return all(t.is_alive() for t in self._threads) and not self._errors

    def join(self) -> None:
        """Wait for both loops to stop; re-raise the first crash."""
        for thread in self._threads:
            thread.join()
        self._stage.close()
        if self._errors:
            raise self._errors[0]
