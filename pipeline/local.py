"""`newsmon run`: the whole pipeline in one process, no broker. Wiring only.

The same stage objects as the Kafka workers (`ExtractorStage`, `RulesStage`, the
notifier's dispatcher) on the corridor's SQLite transport (`corridor/sqlite/`), with
the same settle policy (`corridor/settle.py`):

    poller ──► queue "raw" ──► ExtractorStage (process pool) ──► queue "enriched"
           ──► RulesStage ──► queue "alerts" ──► delivery journal ──► chat / webhooks

A record leaves its queue only after what it became is queued, and alerts are queued
before the rules engine confirms them, so a `kill -9` anywhere loses nothing; a
restart resumes where the files say, and the stages' ledgers drop what a restart
hands them again.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from pipeline.config import Config
from pipeline.corridor.records import ChunkedStage, Message, Stage
from pipeline.corridor.runner import Runner
from pipeline.corridor.sqlite.queue import LocalQueue
from pipeline.corridor.sqlite.transport import QueueRunner, SqliteTransport
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.pool import Extraction
from pipeline.extractor.stage import ExtractorStage
from pipeline.history.feeder import HistoryWriter
from pipeline.history.sources import LocalHistory
from pipeline.history.store import HistoryStore
from pipeline.metrics import Metrics
from pipeline.models import Alert, RawStory
from pipeline.notifier.delivered import open_ledger
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.format import spike_counts_text
from pipeline.notifier.local import HandOffStage, LocalDelivery
from pipeline.poller.stage import FeedPoller
from pipeline.poller.state import SqliteStateStore
from pipeline.rules.engine import RulesEngine, open_engine, reload_on_sighup
from pipeline.rules.stage import RulesStage, alert_output

log = logging.getLogger(__name__)

RAW, ENRICHED, ALERTS = "raw", "enriched", "alerts"
PROGRESS_SECONDS = 2.0
IDLE_SECONDS = 0.2
RULES_PER_STEP = 50


@dataclass
class RunReport:
    stories: int = 0
    enriched: int = 0
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: int = 0


class LocalPipeline:
    """Poll, enrich, match and deliver in one process until stopped (or once, to the end)."""

    def __init__(
        self, config: Config, metrics: Metrics, stop: threading.Event, out: TextIO = sys.stdout
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.metrics = metrics
        self.stop = stop
        self.out = out
        self.report = RunReport()
        self.queue = LocalQueue(config.state_dir / "queue.sqlite3")
        self.engine: RulesEngine = open_engine(config, metrics, history=self._open_history)
        self.delivery = self._delivery()
        self.pages = PageFetcher(
            self.settings.http, max_bytes=self.settings.extraction.max_html_bytes, metrics=metrics
        )
        self.extraction = Extraction(self.settings, config.taxonomy, metrics)
        self.poller = FeedPoller(
            config.feeds, self.settings, publish=self.publish,
            store=SqliteStateStore(config.state_dir), metrics=metrics,
        )  # fmt: skip
        topics = self.settings.kafka.topics
        self.rules_stage = RulesStage(self.engine, topics.alerts)
        extractor = ExtractorStage(self.extraction, self.pages, topics, metrics)
        self.extractor = self._runner(extractor, RAW)
        self.history = HistoryWriter(
            HistoryStore.in_dir(config.state_dir), metrics, self.settings.rules.history_days,
            enriched=ENRICHED, alerts=ALERTS,
        )  # fmt: skip
        self.rules = self._runner(self.rules_stage, ENRICHED, self._rules_published)
        self.alerts = self._runner(
            HandOffStage(self.delivery, self._shown), ALERTS, self.history.record
        )
        self._progress_at = 0.0

    def _delivery(self) -> LocalDelivery:
        destinations = self.settings.notifier.destinations
        self.metrics.declare_destinations(d.id for d in destinations)
        dispatcher = Dispatcher(
            destinations, self.settings.notifier, self.metrics,
            user_agent=self.settings.http.user_agent, sleep=self.stop.wait,
            ledger=open_ledger(self.config.state_dir, self.settings.notifier),
        )  # fmt: skip
        return LocalDelivery(dispatcher, self.config.state_dir, self.metrics)

    def _runner(
        self,
        stage: Stage | ChunkedStage,
        queue: str,
        on_published: Callable[[Sequence[Message]], None] | None = None,
    ) -> Runner:
        """`stage` on the queue `queue`; what it publishes goes to the queue of its topic."""
        topics = self.settings.kafka.topics
        routes = {topics.raw: RAW, topics.enriched: ENRICHED, topics.alerts: ALERTS}
        transport = SqliteTransport(self.queue, queue, routes, topics.dead_letter)
        return QueueRunner(
            stage, transport, self.settings.kafka, self.metrics, self.stop,
            on_published=on_published,
        )  # fmt: skip

    def _open_history(self, _timeout: float) -> LocalHistory:
        """What a reload's flood check reads: the history this pipeline keeps."""
        return LocalHistory(self.history.store)

    def _rules_published(self, messages: Sequence[Message]) -> None:
        """Stories past the rules stage go into the history (the console, the backtest)."""
        self.rules_stage.published(messages)
        self.history.record(messages)

    def publish(self, stories: list[RawStory]) -> None:
        """The poller's sink: durable in the queue before the poller saves its state."""
        self.queue.put(RAW, [(s.id, s.to_bytes()) for s in stories])
        self.report.stories += len(stories)

    def healthy(self) -> bool:
        return self.poller.healthy(max_silence=300.0)

    # -- running ------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> RunReport:
        import asyncio

        self.delivery.start()
        polling_done = threading.Event()

        def poll() -> None:
            try:
                asyncio.run(self.poller.run(self.stop, once=once))
            except Exception:
                log.exception("poller crashed")
                self.stop.set()
            finally:
                polling_done.set()

        threading.Thread(target=poll, name="poller", daemon=True).start()
        try:
            while not self.stop.is_set():
                worked = self.step()
                if once and polling_done.is_set() and self._drained():
                    break
                if not worked:
                    self._idle()
        finally:
            self.close(polling_done)
        return self.report

    def step(self) -> bool:
        """One round of every stage; True if anything moved.

        The rules file is checked here too, not only when a story reaches the rules stage,
        so that an edit (or SIGHUP) takes effect and is logged on a quiet stream, as the
        Kafka rules worker does between polls.
        """
        moved = self.extractor.run_once(timeout=0)
        for _ in range(RULES_PER_STEP):
            settled = self.rules.run_once(timeout=0)
            moved += settled
            if not settled:
                break
        moved += self.alerts.run_once(timeout=0)
        self.engine.emit_due_digests(self._publish_digests)
        self.engine.reload_if_due()  # a saved rules file is taken up while no story comes
        self._progress()
        return moved > 0

    def _publish_digests(self, alerts: Sequence[Alert]) -> None:
        topic = self.settings.kafka.topics.alerts
        self.rules.transport.publish([alert_output(topic, alert) for alert in alerts])

    def _shown(self, alert: Alert) -> None:
        self.report.alerts.append(alert)
        print_alert(alert, self.out)

    def _idle(self) -> None:
        """Until a record is queued or a chunk in flight finishes, whichever comes first
        (at most IDLE_SECONDS): the queue's `arrived` event is set by both, so a story
        the poller queues while the pool is busy is handed over at once, not when a
        chunk lands."""
        self.queue.arrived.wait(IDLE_SECONDS)
        self.queue.arrived.clear()

    def _drained(self) -> bool:
        queued = sum(self.queue.pending(name) for name in (RAW, ENRICHED, ALERTS))
        in_hand = self.extractor.in_hand() + self.rules.in_hand() + self.alerts.in_hand()
        return queued == 0 and in_hand == 0 and self.delivery.pending() == 0

    # -- output -----------------------------------------------------------------------------

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._progress_at < PROGRESS_SECONDS:
            return
        self._progress_at = now
        raw, enriched = self.queue.pending(RAW), self.queue.pending(ENRICHED)
        if raw or enriched or self.delivery.pending():
            print(
                f"… {self.report.stories} stories found, {raw} waiting for extraction, "
                f"{enriched} for rules, {self.delivery.pending()} deliveries pending, "
                f"{len(self.report.alerts)} alerts",
                file=sys.stderr,
                flush=True,
            )

    def _count(self, stage: str, outcome: str) -> int:
        labels = {"stage": stage, "outcome": outcome}
        return int(self.metrics.registry.get_sample_value("newsmon_records_total", labels) or 0)

    def close(self, polling_done: threading.Event) -> None:
        self.stop.set()
        polling_done.wait(timeout=30)
        try:
            for runner in (self.extractor, self.rules, self.alerts):
                runner.close()
        finally:
            self.report.enriched = self._count("extractor", "ok")
            self.report.dead_letters = sum(
                self._count(stage, "dead_letter") for stage in ("extractor", "rules", "notifier")
            )
            self.delivery.close()
            self.delivery.dispatcher.close()
            self.extraction.close()
            self.pages.close()
            self.engine.close()
            self.history.store.close()
            self.queue.close()


def print_alert(alert: Alert, out: TextIO) -> None:
    """An alert as a person reads it in a terminal: rule, title, link, snippets."""
    story = alert.story
    if alert.kind == "digest":
        out.write(
            f"\n[{alert.severity}] {alert.rule_name}: digest of {len(alert.digest)} stories\n"
        )
        for item in alert.digest:
            out.write(f"  - {item.title}\n    {item.url}\n")
    elif alert.kind == "spike" and alert.spike is not None:
        counts = spike_counts_text(alert.spike)
        out.write(f"\n[{alert.severity}] {alert.rule_name}: spike, {counts}\n")
        for item in alert.spike.headlines:
            out.write(f"  - {item.title}\n    {item.url}\n")
    else:
        out.write(f"\n[{alert.severity}] {alert.rule_name}: {story.title}\n  {story.url}\n")
        for match in alert.matches[:3]:
            out.write(f"  {match.field}: {match.snippet}\n")
    out.flush()


def run_pipeline(config: Config, *, once: bool, out: TextIO = sys.stdout) -> RunReport:
    from pipeline.runtime import setup_logging, start_metrics, stop_event

    setup_logging(config.settings.log)
    stop = stop_event()
    metrics = Metrics()
    pipeline = LocalPipeline(config, metrics, stop, out)
    reload_on_sighup(pipeline.engine)
    server = start_metrics(config.settings, metrics, health=pipeline.healthy)
    try:
        return pipeline.run(once=once)
    finally:
        if server is not None:
            server.shutdown()
