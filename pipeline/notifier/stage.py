"""The notifier's transform host on the corridor: every alert tried once on each of its
destinations, every destination on its own lane. What cannot be delivered within
`handoff_after_seconds` becomes a retry record, what can never be delivered a dead
letter (`records.py`); the worker's retry loop (`worker.py`) takes it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pipeline.config import KafkaSettings
from pipeline.corridor.records import Message, Output, Result
from pipeline.errors import PipelineError
from pipeline.metrics import Metrics
from pipeline.models import Alert, decode
from pipeline.notifier.dispatch import Dispatcher, run_lanes
from pipeline.notifier.records import dead_letter, retry_record
from pipeline.notifier.tasks import STAGE, Delivered, DeliveryTask, Later, Outcome


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
