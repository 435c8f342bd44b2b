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
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TextIO

from pipeline.config import Config, Settings
from pipeline.errors import PipelineError
from pipeline.extractor.enrich import Enricher, PageOutcome, count_story
from pipeline.extractor.pages import PageFetcher
from pipeline.local_queue import LocalQueue, Queued
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, RawStory, decode
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


# --- extraction in worker processes -------------------------------------------------------

_worker_enricher: Enricher | None = None


def _start_worker(settings: Settings) -> None:
    """Each pool process loads spaCy and the taxonomy once."""
    global _worker_enricher  # noqa: PLW0603 - one Enricher per worker process, by design
    _worker_enricher = Enricher.from_settings(settings)


def _enrich_in_worker(items: list[tuple[RawStory, PageOutcome]]) -> list[EnrichedStory]:
    assert _worker_enricher is not None, "pool initializer did not run"
    return _worker_enricher.enrich_batch(items)


def extraction_workers(settings: Settings) -> int:
    import os

    return settings.extraction.workers or max(1, len(os.sched_getaffinity(0)))


class Extraction:
    """Enrichment over a process pool (or in-process with one worker)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.workers = extraction_workers(settings)
        self.batch_size = settings.nlp.batch_size
        self.pool: Executor | None = None
        self.local: Enricher | None = None
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(
                self.workers, get_context("spawn"), _start_worker, (settings,)
            )
        else:
            self.local = Enricher.from_settings(settings, metrics)

    def enrich(self, items: list[tuple[RawStory, PageOutcome]]) -> list[EnrichedStory]:
        if self.local is not None:
            return self.local.enrich_batch(items)
        assert self.pool is not None
        size = max(1, min(self.batch_size, -(-len(items) // self.workers)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        enriched = [s for part in self.pool.map(_enrich_in_worker, chunks) for s in part]
        for story in enriched:
            count_story(self.metrics, story)  # worker processes have no registry of ours
        return enriched

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


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

    def _delivery(self) -> LocalDelivery:
        destinations = self.settings.notifier.destinations
        self.metrics.declare_destinations(d.id for d in destinations)
        dispatcher = Dispatcher(
            destinations, self.settings.notifier, self.metrics,
            user_agent=self.settings.http.user_agent, sleep=self.stop.wait,
        )  # fmt: skip
        return LocalDelivery(dispatcher, self.config.state_dir, self.metrics)

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
                    self.stop.wait(IDLE_SECONDS)
        finally:
            self.close(polling_done)
        return self.report

    def step(self) -> bool:
        """One round of every stage; True if anything moved."""
        moved = self.extract_step() + self.rules_step()
        self.engine.emit_due_digests(self._submit_all)
        self._progress()
        return moved > 0

    def _drained(self) -> bool:
        idle = self.queue.pending(RAW) == 0 and self.queue.pending(ENRICHED) == 0
        return idle and self.delivery.pending() == 0

    # -- extraction -----------------------------------------------------------------------

    def extract_step(self) -> int:
        records = self.queue.take(RAW, self.extraction.batch_size * self.extraction.workers)
        stories = [(r, s) for r, s in ((r, self._decode_raw(r)) for r in records) if s is not None]
        if not stories:
            return len(records)
        outcomes = self.pages.fetch_all([story.url for _, story in stories])
        items = [(story, outcome) for (_, story), outcome in zip(stories, outcomes, strict=True)]
        try:
            enriched = self._enrich(items)
        except Exception as exc:
            log.exception("enrichment failed, retrying one by one stories=%s", len(items))
            return self._enrich_one_by_one(stories, items, exc)
        done = [record for record, _ in stories]
        self.queue.advance(RAW, done, ENRICHED, [(s.id, s.to_bytes()) for s in enriched])
        self.report.enriched += len(enriched)
        return len(records)

    def _enrich(self, items: list[tuple[RawStory, PageOutcome]]) -> list[EnrichedStory]:
        started = time.monotonic()
        enriched = self.extraction.enrich(items)
        per_story = (time.monotonic() - started) / max(1, len(items))
        for _ in items:
            self.metrics.handle_seconds.labels("extractor").observe(per_story)
            self.metrics.records.labels("extractor", "ok").inc()
        return enriched

    def _enrich_one_by_one(
        self,
        stories: list[tuple[Queued, RawStory]],
        items: list[tuple[RawStory, PageOutcome]],
        first_error: Exception,
    ) -> int:
        for (record, _), item in zip(stories, items, strict=True):
            try:
                [story] = self._enrich([item])
            except Exception as exc:
                self._dead_letter(RAW, "extractor", record, "crash", f"{type(exc).__name__}: {exc}")
                continue
            self.queue.advance(RAW, [record], ENRICHED, [(story.id, story.to_bytes())])
            self.report.enriched += 1
        log.debug("batch error was error=%s", first_error)
        return len(stories)

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
