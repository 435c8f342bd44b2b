"""The two ways records reach the history store, sharing one writer.

- `newsmon run` hands the writer each chunk the rules stage and the alert hand-off
  settled (`HistoryWriter.record`, from the runners' `on_published` hook in
  `pipeline/local.py`);
- the console on Kafka runs `HistoryStage` on the corridor's Kafka transport, in its
  own consumer group over the enriched and alerts topics: the corridor acknowledges a
  chunk only after the stage returned, that is after the store write committed, so a
  restart resumes from the committed offsets and loses nothing (a record read twice
  is stored once).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

from pipeline.config import KafkaSettings
from pipeline.corridor.records import Message, Result
from pipeline.errors import Retryable
from pipeline.history.store import HistoryStore, split_records
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 60.0
DAY = 86400.0
Clock = Callable[[], float]


class HistoryWriter:
    """Stores enriched stories and alerts, and prunes past `history_days` a batch at a time."""

    def __init__(
        self,
        store: HistoryStore,
        metrics: Metrics,
        history_days: float,
        *,
        enriched: str,
        alerts: str,
        clock: Clock = time.time,
    ) -> None:
        """`enriched` and `alerts` name where those records come from: the Kafka topics, or
        the queue names of `newsmon run`."""
        self.store = store
        self.enriched, self.alerts = enriched, alerts
        self.metrics = metrics
        self.keep_seconds = history_days * DAY
        self.clock = clock
        self._pruned_at = 0.0

    def record(self, messages: Sequence[Message]) -> None:
        """Store the stories and alerts among `messages` (other topics are ignored)."""
        stories, alerts, unreadable = split_records(
            ((m.topic, m.value) for m in messages), self.enriched, self.alerts
        )
        if unreadable:
            self.metrics.history_records.labels("story", "unreadable").inc(unreadable)
        if stories or alerts:
            added_stories, added_alerts = self.store.add(stories, alerts, self.clock())
            self._count("story", len(stories), added_stories)
            self._count("alert", len(alerts), added_alerts)
        self.prune_if_due()

    def _count(self, kind: str, handed: int, stored: int) -> None:
        self.metrics.history_records.labels(kind, "stored").inc(stored)
        self.metrics.history_records.labels(kind, "duplicate").inc(handed - stored)

    def prune_if_due(self) -> None:
        """One bounded batch a minute: retention never stalls the writer."""
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        pruned = self.store.prune(now - self.keep_seconds)
        self.metrics.history_pruned.labels("story").inc(pruned.stories)
        self.metrics.history_pruned.labels("alert").inc(pruned.alerts)
        if not pruned.done:
            self._pruned_at = 0.0  # more to delete: the next call takes another batch


class HistoryStage:
    """The console's feeder on the corridor: every record is stored, nothing is published."""

    name = "console"

    def __init__(self, writer: HistoryWriter) -> None:
        self.writer = writer

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        try:
            self.writer.record(messages)
        except sqlite3.OperationalError as exc:  # disk full, locked too long: try again
            error = Retryable(f"history store: {exc}", reason="history_store")
            return [error for _ in messages]
        return [[] for _ in messages]


def start_kafka_feeder(
    writer: HistoryWriter,
    settings: KafkaSettings,
    metrics: Metrics,
    stop: threading.Event,
    group_id: str | None = None,
) -> threading.Thread:
    """Fill the store from the alerts and enriched topics on a thread, until `stop`."""
    from pipeline.corridor.kafka.transport import StageRunner

    topics = [settings.topics.alerts, settings.topics.enriched]

    def feed() -> None:
        try:
            runner = StageRunner(
                HistoryStage(writer), settings, topics, metrics, stop,
                group_id=group_id, chunk_size=settings.max_poll_records,
                commit_every=settings.commit_interval_seconds,
            )  # fmt: skip
            runner.run()
        except Exception:
            log.exception("console feeder stopped", extra={"stage": "console"})
            stop.set()

    thread = threading.Thread(target=feed, name="console-feeder", daemon=True)
    thread.start()
    return thread
