"""Enrichment on every core: a process pool fed chunk by chunk, for `newsmon run` and
`newsmon extractor` alike.

Each pool process loads spaCy and the taxonomy once. Chunks go in as they are
ready and come back in the order they finish; the caller keeps `in_flight_target`
of them submitted (one running and one waiting per worker), so a worker that
finishes never waits for the caller, and a heavy page holds up one worker, not
the pool. With one worker, enrichment runs in the calling process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.sharedctypes import Synchronized

from pipeline.config import Settings, TaxonomyFile
from pipeline.extractor.enrich import Enriched, Enricher, PageOutcome, record_enriched
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, RawStory

Items = list[tuple[RawStory, PageOutcome]]

SPARE_WORKER_NICE = 10

_worker_enricher: Enricher | None = None
_worker_error: Exception | None = None


def _start_worker(settings: Settings, taxonomy: TaxonomyFile, started: Synchronized[int]) -> None:
    """Leave Ctrl-C to the parent, yield the CPU to the stages, then load the models.

    A Ctrl-C in a terminal reaches every process of its group: the pool's children
    would each print a `KeyboardInterrupt` traceback. The parent owns the shutdown
    (it finishes the chunks in flight and says what it did), so children ignore it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_enricher, _worker_error  # noqa: PLW0603 - one Enricher per worker process
    with started.get_lock():
        first = started.value == 0
        started.value += 1
    _yield_to_stages(spare=not first)
    try:
        _worker_enricher = Enricher.from_settings(settings, taxonomy=taxonomy)
    except Exception as exc:  # raised to the parent by the first task, not a broken pool
        _worker_error = exc


def _yield_to_stages(*, spare: bool) -> None:
    """Pool processes run as batch work; every worker but the first also at a lower priority.

    Linux's SCHED_BATCH gives CPU-bound work longer time slices, and a batch process
    waking up does not preempt others, while the stages' own processes (polling,
    publishing, matching, delivering) still run as soon as they wake. The first worker
    otherwise competes for CPU like any process; the others soak up cores that would
    otherwise idle, and yield them.
    Two extractors on one machine thus each keep about one busy process when both have
    work (time-slicing four spaCy processes over two cores costs more CPU per story in
    `bench/pipeline_latency.py`), and either one uses every core when the other has none.
    """
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):  # a sandbox may refuse it: run as normal work
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    if spare:
        os.nice(SPARE_WORKER_NICE)


def scheduling(hold: float = 0.0) -> tuple[int, int]:
    """(scheduling policy, nice value) of the calling process, after `hold` seconds (a
    check that keeps one pool process busy that long, so the next call goes elsewhere)."""
    time.sleep(hold)
    policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else -1
    return policy, os.nice(0)


def _enrich_in_worker(items: Items) -> Enriched:
    if _worker_error is not None:
        raise _worker_error
    assert _worker_enricher is not None, "pool initializer did not run"
    return _worker_enricher.enrich_chunk(items)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while processes are spawned (a spawned Python keeps an ignored SIGINT
    ignored); only the main thread may change handlers, elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def extraction_workers(settings: Settings) -> int:
    return settings.extraction.workers or max(1, len(os.sched_getaffinity(0)))


class Extraction:
    """Enrichment over a process pool (or in-process with one worker), chunk by chunk."""

    def __init__(self, settings: Settings, taxonomy: TaxonomyFile, metrics: Metrics) -> None:
        """`taxonomy`: the one the config loaded, handed to every pool process."""
        self.metrics = metrics
        self.workers = extraction_workers(settings)
        self.batch_size = settings.nlp.batch_size
        self.pool: Executor | None = None
        self.local: Enricher | None = None
        if self.workers > 1:
            context = get_context("spawn")
            started = context.Value("i", 0)
            self.pool = ProcessPoolExecutor(
                self.workers, context, _start_worker, (settings, taxonomy, started)
            )
            self._start_every_worker()
        else:
            self.local = Enricher.from_settings(settings, taxonomy=taxonomy)

    def _start_every_worker(self) -> None:
        """Start all workers now and wait until each has loaded its models, or raise what
        stopped one (a model that is not installed: a `ConfigError`, as in one process).

        The pool starts a process only when none is idle; left alone, the second one would
        load spaCy under the first burst of stories, seconds of latency for them.
        """
        assert self.pool is not None
        with _sigint_ignored():  # each submit spawns a child, which then starts ignoring it
            warm = [self.pool.submit(_enrich_in_worker, []) for _ in range(self.workers)]
        try:
            for done in warm:
                done.result()
        except BaseException:
            self.close()
            raise

    @property
    def in_flight_target(self) -> int:
        """Chunks kept submitted: one running and one waiting per worker."""
        return 2 * self.workers if self.pool is not None else 1

    def chunk_size(self, backlog: int) -> int:
        """Small chunks while the backlog is short (latency), up to `nlp.batch_size` when
        it is long (throughput)."""
        return max(1, min(self.batch_size, backlog // self.in_flight_target))

    def submit(self, items: Items) -> Future[Enriched]:
        """The chunk enriched, its metrics already counted here (the registry's process)."""
        if self.local is not None:
            done: Future[Enriched] = Future()
            try:
                done.set_result(self.local.enrich_chunk(items))
            except Exception as exc:  # handed to the caller like a worker's failure
                done.set_exception(exc)
        else:
            assert self.pool is not None
            done = self.pool.submit(_enrich_in_worker, items)
        done.add_done_callback(self._record)
        return done

    def _record(self, done: Future[Enriched]) -> None:
        if not done.cancelled() and done.exception() is None:
            record_enriched(self.metrics, done.result())

    def enrich(self, items: Items) -> list[EnrichedStory]:
        """Synchronously (the one-by-one retry of a failed chunk)."""
        return self.submit(items).result().stories

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
