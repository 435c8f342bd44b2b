"""The settle policy: what becomes of a record once its stage has had it. Written once,
for both transports.

| the stage returned    | the record                                 | counted (by stage)   |
| --------------------- | ------------------------------------------ | -------------------- |
| outputs               | outputs published, then acknowledged       | records ok           |
| `Skip`                | acknowledged, nothing published            | records skipped      |
| `Retryable`           | handled again after a backoff, up to       | records retried      |
|                       | `max_attempts` tries, then as below        | (each retry)         |
| other `PipelineError` | dead letter (original key, bytes, headers, | records dead_letter, |
| (decode, schema, ...) | plus the error and source), acknowledged   | dead_letters,        |
|                       |                                            | stage_errors         |
| an exception (a bug)  | as `PipelineError(reason="crash")`         | as a dead letter     |

A whole chunk that raises is handled again one record at a time, so one bad record
costs only itself. A broken process pool is not a record's fault: it propagates and
stops the worker, and the records are read again by the restart.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass

from pipeline.config import KafkaSettings
from pipeline.corridor.records import HEADER_PREFIX, Message, Output, Result, Stage
from pipeline.errors import PipelineError, Retryable, Skip
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


def dead_letter_output(
    topic: str, stage: str, message: Message, error: BaseException, attempts: int
) -> Output:
    """The original bytes and key, with the error and the source position in headers."""
    reason = error.reason if isinstance(error, PipelineError) else "crash"
    detail = str(error) if isinstance(error, PipelineError) else traceback.format_exc(limit=5)
    headers = (
        *message.headers,
        (HEADER_PREFIX + "error.stage", stage.encode()),
        (HEADER_PREFIX + "error.reason", reason.encode()),
        (HEADER_PREFIX + "error.type", type(error).__name__.encode()),
        (HEADER_PREFIX + "error.message", detail[:4000].encode("utf-8", "replace")),
        (HEADER_PREFIX + "error.attempts", str(attempts).encode()),
        (HEADER_PREFIX + "source.topic", message.topic.encode()),
        (HEADER_PREFIX + "source.partition", str(message.partition).encode()),
        (HEADER_PREFIX + "source.offset", str(message.offset).encode()),
    )
    return Output(topic, message.key, message.value, headers)


@dataclass(frozen=True)
class SettlePolicy:
    """Turns a stage's results into the outputs to publish, retrying and dead-lettering.

    `stop` cuts a backoff short: a worker asked to stop does not sit out a retry.
    """

    stage: Stage
    metrics: Metrics
    stop: threading.Event
    dead_letter_topic: str
    max_attempts: int
    backoff_seconds: float

    def handle_each(self, messages: Sequence[Message]) -> list[Result]:
        return [self.handle_one(message) for message in messages]

    def checked(self, messages: Sequence[Message], results: list[Result]) -> list[Result]:
        if len(results) != len(messages):
            raise RuntimeError(
                f"{self.stage.name} returned {len(results)} results for {len(messages)}"
            )
        return results

    def handle_one(self, message: Message) -> Result:
        try:
            return next(iter(self.stage.handle_batch([message])))
        except BrokenExecutor:
            raise
        except Exception as exc:
            log.exception("record crashed the stage", extra=_where(self.stage.name, message))
            return PipelineError(f"{type(exc).__name__}: {exc}", reason="crash")

    def outputs_for(self, message: Message, result: Result) -> list[Output]:
        """What to publish for a record: its outputs, nothing, or its dead letter."""
        attempts = 1
        while isinstance(result, Retryable) and attempts < self.max_attempts:
            self.metrics.records.labels(self.stage.name, "retried").inc()
            self._backoff(result, attempts)
            attempts += 1
            result = self.handle_one(message)
        if isinstance(result, Skip):
            self.metrics.records.labels(self.stage.name, "skipped").inc()
            return []
        if isinstance(result, PipelineError):
            return [self.dead_letter(message, result, attempts)]
        self.metrics.records.labels(self.stage.name, "ok").inc()
        return list(result)

    def dead_letter(self, message: Message, error: PipelineError, attempts: int) -> Output:
        stage = self.stage.name
        log.warning(
            "dead-lettering record",
            extra={**_where(stage, message), "reason": error.reason, "error": str(error)},
        )
        self.metrics.records.labels(stage, "dead_letter").inc()
        self.metrics.dead_letters.labels(stage, error.reason).inc()
        self.metrics.stage_errors.labels(stage, error.reason).inc()
        return dead_letter_output(self.dead_letter_topic, stage, message, error, attempts)

    def _backoff(self, error: Retryable, attempts: int) -> None:
        delay = self.backoff_seconds * (2 ** (attempts - 1))
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        self.stop.wait(min(delay, MAX_BACKOFF_SECONDS))


def policy_for(
    stage: Stage, settings: KafkaSettings, metrics: Metrics, stop: threading.Event
) -> SettlePolicy:
    """The policy both transports use: `kafka.max_attempts` and `kafka.retry_backoff_seconds`
    apply to `newsmon run` too."""
    return SettlePolicy(
        stage, metrics, stop, settings.topics.dead_letter, settings.max_attempts,
        settings.retry_backoff_seconds,
    )  # fmt: skip


def publish_until_stopped(
    publish: Callable[[Sequence[Output]], None],
    outputs: Sequence[Output],
    stop: threading.Event,
    *,
    backoff_seconds: float,
    stage: str,
) -> bool:
    """Publish, retrying with backoff while the sink is down; False if stopped first.

    Acknowledging past unpublished output would lose it, so the caller acknowledges
    only on True; on False the records are read again by whoever reads next.
    """
    delay = backoff_seconds
    while True:
        try:
            publish(outputs)
            return True
        except Retryable as exc:
            log.error("publish failed, retrying", extra={"stage": stage, "reason": exc.reason})
            if stop.wait(min(delay, MAX_BACKOFF_SECONDS)):
                return False
            delay = max(delay * 2, 0.5)


def _where(stage: str, message: Message) -> dict[str, object]:
    return {
        "stage": stage,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
    }
