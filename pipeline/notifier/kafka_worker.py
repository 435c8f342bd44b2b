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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pipeline.config import KafkaSettings, Settings
from pipeline.errors import PipelineError, Retryable
from pipeline.kafka_io import (
    Message,
    OffsetConsumer,
    Output,
    Producer,
    Result,
    StageRunner,
    dead_letter_output,
)
from pipeline.metrics import Metrics
from pipeline.models import Alert, decode
from pipeline.notifier.dispatch import Dispatcher, run_lanes
from pipeline.notifier.records import dead_letter, retry_record, task_from_retry
from pipeline.notifier.scheduler import DeliveryScheduler
from pipeline.notifier.tasks import STAGE, Delivered, DeliveryTask, Later, Outcome
from pipeline.offsets import OffsetTracker, Partition, Position

log = logging.getLogger(__name__)

HOLD_SECONDS = 60.0  # a retry record not sent yet is kept in memory if due this soon
MAX_HELD = 10_000  # retry records held in memory before the retry topic is paused
BUSY_POLL_SECONDS = 0.05


class AlertStage:
    """The alerts loop's transform: every alert tried once on each of its destinations."""

    name = STAGE

    def __init__(self, dispatcher: Dispatcher, settings: KafkaSettings, metrics: Metrics) -> None:
        self._dispatcher = dispatcher
        self._settings = settings
        self._metrics = metrics
        workers = len(dispatcher.destination_ids) + 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notifier-alerts")

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        prepared = [self._tasks(m) for m in messages]
        tasks = [t for p in prepared if not isinstance(p, PipelineError) for t in p]
        wait_until = self._dispatcher.clock() + self._dispatcher.settings.handoff_after_seconds
        outcomes = iter(run_lanes(self._dispatcher, tasks, wait_until, self._pool))
        results: list[Result] = []
        for message, item in zip(messages, prepared, strict=True):
            if isinstance(item, PipelineError):
                results.append(item)
                continue
            settled = (self._output(message, next(outcomes)) for _ in item)
            results.append([output for output in settled if output is not None])
        return results

    def _tasks(self, message: Message) -> list[DeliveryTask] | PipelineError:
        try:
            alert = decode(Alert, message.value)
        except PipelineError as exc:  # DecodeError/SchemaError: the runner dead-letters it
            return exc
        return self._dispatcher.tasks_for(alert, message.value)

    def _output(self, message: Message, outcome: Outcome) -> Output | None:
        return settle_output(self._settings, self._metrics, message, outcome)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def settle_output(
    settings: KafkaSettings, metrics: Metrics, message: Message, outcome: Outcome
) -> Output | None:
    """What an outcome leaves on Kafka: nothing, a retry record or a dead letter."""
    if isinstance(outcome, Delivered):
        return None
    if isinstance(outcome, Later):
        return retry_record(settings, outcome.task)
    metrics.dead_letters.labels(STAGE, outcome.error.reason).inc()
    return dead_letter(settings, message, outcome.task, outcome.error)


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
        self.tracker = OffsetTracker()
        self._held: dict[int, Message] = {}
        self._ids = itertools.count()
        self._paused = False
        self.producer = Producer(settings)
        self.consumer = OffsetConsumer(
            settings,
            [settings.topics.delivery_retry],
            group_id or f"{settings.group_prefix}-{STAGE}-retry",
            f"{STAGE}-retry",
            on_revoked=self._revoked,
        )

    def run(self) -> None:
        log.info("retry loop started topic=%s", self.settings.topics.delivery_retry)
        try:
            while not self.stop.is_set():
                self.run_once()
        finally:
            self.close()

    def run_once(self, timeout: float | None = None) -> int:
        """One poll, start what is due, settle what finished, commit; returns records settled."""
        wait = self._poll_wait() if timeout is None else timeout
        outputs: list[Output] = []
        settled: list[int] = []
        for message in self.consumer.poll(wait):
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
        self.tracker.track(_position(message))
        try:
            task = task_from_retry(message)
        except PipelineError as exc:
            log.warning("damaged retry record offset=%s error=%s", message.offset, exc)
            self.metrics.dead_letters.labels(STAGE, exc.reason).inc()
            outputs.append(dead_letter_output(self.settings, STAGE, message, exc, 0))
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
        """Publish, then mark settled, then commit: never commit past unpublished output."""
        if outputs and not self._publish(outputs):
            return
        for token in settled:
            message = self._held.pop(token, None)
            if message is not None:
                self.tracker.settle(_position(message))
        self._commit()

    def _publish(self, outputs: list[Output]) -> bool:
        delay = self.settings.retry_backoff_seconds
        while True:
            try:
                self.producer.publish(outputs)
                return True
            except Retryable as exc:
                log.error("publish failed, retrying stage=%s error=%s", STAGE, exc)
                if self.stop.wait(min(delay, 30.0)):
                    return False
                delay = max(delay * 2, 0.5)

    def _commit(self) -> None:
        offsets = self.tracker.committable()
        if self.consumer.commit(offsets):
            self.tracker.mark_committed(offsets)

    def _revoked(self, partitions: set[Partition]) -> None:
        """Let go of what is held: the next owner re-reads it from the commit point.

        kafka-python calls this on its IO thread while `poll()` or `close()` waits, so
        it must not block on the client: no commit here (every round commits what it
        settled; what a failed commit left behind is delivered again, with the same
        webhook-id). The consumer is also rewound to the commit point: if a partition
        comes back to this worker, the client keeps its position, which is past what
        was held.
        """
        self.consumer.seek(self.tracker.commit_points(partitions))
        self.tracker.forget(partitions)
        gone = {t for t, m in self._held.items() if (m.topic, m.partition) in partitions}
        self.scheduler.discard(gone)
        for token in gone:
            del self._held[token]
        log.info(
            "retry partitions revoked partitions=%s released=%s", sorted(partitions), len(gone)
        )

    def _flow_control(self) -> None:
        held = len(self._held)
        if not self._paused and held >= MAX_HELD:
            self.consumer.pause()
            self._paused = True
            log.warning("retry topic paused held=%s", held)
        elif self._paused and held < MAX_HELD // 2:
            self.consumer.resume()
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
            try:
                self.producer.close()
            finally:
                self.consumer.close()
        log.info("retry loop stopped")


def _keep(outcome: Later, now: float) -> bool:
    """Keep a not-yet-sent delivery in memory if it is due soon; else re-queue it on Kafka."""
    return not outcome.attempted and outcome.task.not_before - now <= HOLD_SECONDS


def _position(message: Message) -> Position:
    return (message.topic, message.partition, message.offset)


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
                log.exception("notifier loop crashed thread=%s", threading.current_thread().name)
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
