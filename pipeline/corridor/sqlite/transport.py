"""The SQLite transport: one named queue in, outputs routed to other queues by topic.

Offsets are the queue's sequence numbers on partition 0, so a stage sees the same
`Message` it would see on Kafka; an output's topic names the queue it goes to
(`routes`), and the dead-letter topic goes to the queue file's dead-letter table with
the error taken from the headers the settle policy wrote.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence

from pipeline.config import KafkaSettings
from pipeline.corridor.records import HEADER_PREFIX, ChunkedStage, Message, Output, Stage
from pipeline.corridor.runner import Hooks, Runner
from pipeline.corridor.settle import policy_for
from pipeline.corridor.sqlite.queue import DeadLetter, Keyed, LocalQueue
from pipeline.errors import PipelineError, Retryable
from pipeline.metrics import Metrics

POLL_LIMIT = 50


class SqliteTransport:
    """Hands out a queue's records in order; publishing and acknowledging are transactions."""

    def __init__(
        self,
        queue: LocalQueue,
        name: str,
        routes: Mapping[str, str],
        dead_letter_topic: str,
        *,
        limit: int = POLL_LIMIT,
    ) -> None:
        self.queue = queue
        self.name = name
        self.routes = dict(routes)
        self.dead_letter_topic = dead_letter_topic
        self.limit = limit
        self._taken_through = 0
        """Highest sequence number handed out by this transport (the rest are in hand)."""

    def poll(self, timeout: float) -> list[Message]:
        records = self.queue.take(self.name, self.limit, after=self._taken_through)
        if not records and timeout > 0:
            self.queue.arrived.clear()
            self.queue.arrived.wait(timeout)
            records = self.queue.take(self.name, self.limit, after=self._taken_through)
        if records:
            self._taken_through = records[-1].offset
        return records

    def publish(self, outputs: Sequence[Output]) -> None:
        queued: dict[str, list[Keyed]] = {}
        dead: list[DeadLetter] = []
        for out in outputs:
            if out.topic == self.dead_letter_topic:
                dead.append(_dead_letter(out))
            else:
                queued.setdefault(self._route(out.topic), []).append((_key(out.key), out.value))
        try:
            self.queue.publish(queued, dead)
        except sqlite3.OperationalError as exc:  # a locked or full disk: try again
            raise Retryable(f"queue publish failed: {exc}", reason="publish") from exc

    def acknowledge(self, messages: Sequence[Message]) -> None:
        if messages:
            self.queue.remove([m.offset for m in messages])

    def flush(self) -> None:
        """Every acknowledgement is durable when made."""

    def close(self) -> None:
        """The queue belongs to whoever opened it."""

    def _route(self, topic: str) -> str:
        try:
            return self.routes[topic]
        except KeyError:
            raise PipelineError(f"no queue for topic {topic}", reason="no_topic") from None


def _key(key: str | bytes | None) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key or ""


def _dead_letter(out: Output) -> DeadLetter:
    def header(name: str) -> str:
        value = next((v for k, v in out.headers if k == HEADER_PREFIX + name), b"")
        return value.decode("utf-8", "replace")

    return DeadLetter(
        header("source.topic"), _key(out.key), out.value, header("error.reason"),
        header("error.message"),
    )  # fmt: skip


class QueueRunner(Runner):
    """A stage on the embedded queue: the corridor's `Runner` over a `SqliteTransport`."""

    def __init__(
        self,
        stage: Stage | ChunkedStage,
        transport: SqliteTransport,
        settings: KafkaSettings,
        metrics: Metrics,
        stop: threading.Event,
        *,
        chunk_size: int = 1,
        on_published: Callable[[Sequence[Message]], None] | None = None,
    ) -> None:
        policy = policy_for(stage, settings, metrics, stop)
        super().__init__(
            stage, transport, policy, poll_timeout=0.0, chunk_size=chunk_size,
            stuck_after=settings.max_poll_interval_seconds, hooks=Hooks(on_published=on_published),
            landed=transport.queue.arrived,
        )  # fmt: skip
