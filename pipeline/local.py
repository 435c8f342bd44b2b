"""`newsmon run`: the whole pipeline in one process, no broker.

The same stage code as the Kafka workers (FeedPoller, Enricher, RulesEngine,
Dispatcher), with a durable SQLite queue (`local_queue.py`) as the corridor:

    poller ──► queue "raw" ──► extraction (process pool) ──► queue "enriched"
           ──► rules ──► delivery journal ──► chat / webhooks

A story leaves a queue only in the transaction that enqueues what it became, and
its alerts are journalled for delivery before the rules engine confirms them, so
a `kill -9` anywhere loses nothing; a restart resumes where the files say.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field
from typing import TextIO

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.extractor.enrich import Enriched, PageOutcome
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.pool import Extraction
from pipeline.local_queue import LocalQueue, Queued
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, RawStory, decode
from pipeline.notifier.delivered import open_ledger
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.local import LocalDelivery
from pipeline.poller.runner import FeedPoller
from pipeline.poller.state import SqliteStateStore
from pipeline.rules.engine import RulesEngine, open_engine

log = logging.getLogger(__name__)

RAW, ENRICHED = "raw", "enriched"
PROGRESS_SECONDS = 2.0
IDLE_SECONDS = 0.2
STAGE_RETRIES = 3


# --- extraction chunks in flight ---------------------------------------------------------


@dataclass
class Chunk:
    """Stories handed to the pool: their queue records, in the order of `items`."""

    records: list[Queued]
    items: list[tuple[RawStory, PageOutcome]]
    future: Future[Enriched]


# --- the pipeline -------------------------------------------------------------------------


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
        self.engine: RulesEngine = open_engine(config, metrics)
        self.delivery = self._delivery()
        self.pages = PageFetcher(
            self.settings.http, max_bytes=self.settings.extraction.max_html_bytes, metrics=metrics
        )
        self.extraction = Extraction(self.settings, metrics)
        self.poller = FeedPoller(
            config.feeds, self.settings, publish=self.publish,
            store=SqliteStateStore(config.state_dir), metrics=metrics,
        )  # fmt: skip
        self._progress_at = 0.0
        self._chunks: list[Chunk] = []
        self._taken_through = 0
        """Highest queue sequence number handed to the pool by this process."""
        self._arrived = threading.Event()

    def _delivery(self) -> LocalDelivery:
        destinations = self.settings.notifier.destinations
        self.metrics.declare_destinations(d.id for d in destinations)
        dispatcher = Dispatcher(
            destinations, self.settings.notifier, self.metrics,
            user_agent=self.settings.http.user_agent, sleep=self.stop.wait,
            ledger=open_ledger(self.config.state_dir, self.settings.notifier),
        )  # fmt: skip
        return LocalDelivery(dispatcher, self.config.state_dir, self.metrics)

    def publish(self, stories: list[RawStory]) -> None:
        """The poller's sink: durable in the queue before the poller saves its state."""
        self.queue.put(RAW, [(s.id, s.to_bytes()) for s in stories])
        self.report.stories += len(stories)
        self._arrived.set()

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
        """One round of every stage; True if anything moved."""
        moved = self.collect_extractions() + self.extract_step() + self.rules_step()
        self.engine.emit_due_digests(self._submit_all)
        self._progress()
        return moved > 0

    def _idle(self) -> None:
        """Until a chunk finishes or a poll brings stories (at most IDLE_SECONDS)."""
        if self._chunks:
            wait([c.future for c in self._chunks], IDLE_SECONDS, FIRST_COMPLETED)
        else:
            self._arrived.wait(IDLE_SECONDS)
        self._arrived.clear()

    def _drained(self) -> bool:
        idle = self.queue.pending(RAW) == 0 and self.queue.pending(ENRICHED) == 0
        return idle and not self._chunks and self.delivery.pending() == 0

    # -- extraction -----------------------------------------------------------------------

    def extract_step(self) -> int:
        """Hand chunks to the pool until `in_flight_target` are in it; pages are fetched here,
        while the pool works on the chunks already handed over."""
        taken = 0
        while len(self._chunks) < self.extraction.in_flight_target:
            backlog = self.queue.pending(RAW) - sum(len(c.records) for c in self._chunks)
            limit = self.extraction.chunk_size(backlog)
            records = self.queue.take(RAW, limit, after=self._taken_through)
            if not records:
                break
            self._taken_through = records[-1].seq
            taken += len(records)
            stories = [(r, s) for r, s in ((r, self._decode_raw(r)) for r in records) if s]
            if stories:
                outcomes = self.pages.fetch_all([story.url for _, story in stories])
                items = [(s, o) for (_, s), o in zip(stories, outcomes, strict=True)]
                future = self.extraction.submit(items)
                self._chunks.append(Chunk([r for r, _ in stories], items, future))
        return taken

    def collect_extractions(self) -> int:
        """Enriched chunks move on to the rules queue, in the order they finish."""
        finished = [c for c in self._chunks if c.future.done()]
        for chunk in finished:
            self._chunks.remove(chunk)
            try:
                enriched = chunk.future.result()
            except BrokenExecutor:
                # The pool is gone (a process was killed): retrying one by one would only
                # dead-letter every story. Stop; the stories stay queued for the restart.
                raise
            except Exception as exc:
                log.exception("enrichment failed, retrying one by one stories=%s",
                              len(chunk.items))  # fmt: skip
                self._enrich_one_by_one(chunk, exc)
                continue
            self._enriched(chunk.records, enriched.stories, enriched.seconds)
        return sum(len(c.records) for c in finished)

    def _enriched(
        self, records: list[Queued], enriched: list[EnrichedStory], seconds: float
    ) -> None:
        self.queue.advance(RAW, records, ENRICHED, [(s.id, s.to_bytes()) for s in enriched])
        self.report.enriched += len(enriched)
        for _ in enriched:
            self.metrics.handle_seconds.labels("extractor").observe(seconds / len(enriched))
            self.metrics.records.labels("extractor", "ok").inc()

    def _enrich_one_by_one(self, chunk: Chunk, first_error: Exception) -> None:
        for record, item in zip(chunk.records, chunk.items, strict=True):
            started = time.monotonic()
            try:
                enriched = self.extraction.enrich([item])
            except BrokenExecutor:
                raise
            except Exception as exc:
                self._dead_letter(RAW, "extractor", record, "crash", f"{type(exc).__name__}: {exc}")
                continue
            self._enriched([record], enriched, time.monotonic() - started)
        log.debug("batch error was error=%s", first_error)

    def _decode_raw(self, record: Queued) -> RawStory | None:
        try:
            return decode(RawStory, record.payload)
        except PipelineError as exc:
            self._dead_letter(RAW, "extractor", record, exc.reason, str(exc))
            return None

    # -- rules --------------------------------------------------------------------------------

    def rules_step(self) -> int:
        records = self.queue.take(ENRICHED, 50)
        for record in records:
            self._match(record)
        return len(records)

    def _match(self, record: Queued) -> None:
        try:
            story = decode(EnrichedStory, record.payload)
            alerts = self.engine.process(story)
        except PipelineError as exc:
            self._dead_letter(ENRICHED, "rules", record, exc.reason, str(exc))
            return
        self._submit_all(alerts)
        self.engine.confirm_all()
        self.queue.advance(ENRICHED, [record], None, [])
        self.metrics.records.labels("rules", "ok").inc()

    def _submit_all(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self.delivery.submit(alert)
            self.report.alerts.append(alert)
            print_alert(alert, self.out)

    def _dead_letter(self, queue: str, stage: str, record: Queued, reason: str, error: str) -> None:
        log.warning("dead-lettering record stage=%s key=%s reason=%s", stage, record.key, reason)
        self.queue.dead_letter(queue, record, reason, error)
        self.metrics.records.labels(stage, "dead_letter").inc()
        self.metrics.dead_letters.labels(stage, reason).inc()
        self.report.dead_letters += 1

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

    def close(self, polling_done: threading.Event) -> None:
        self.stop.set()
        polling_done.wait(timeout=30)
        self.delivery.close()
        self.delivery.dispatcher.close()
        self.extraction.close()
        self.pages.close()
        self.engine.close()
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
    server = start_metrics(config.settings, metrics, health=pipeline.healthy)
    try:
        return pipeline.run(once=once)
    finally:
        if server is not None:
            server.shutdown()
