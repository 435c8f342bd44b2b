"""The baseline: the bare library calls on the bench's story pages, in two processes.

Each process loads the same NER-only spaCy pipeline the extractor loads, takes its half
of the pages, warms up on two of them, waits for the other at a barrier, and then runs
`trafilatura.extract` on each page and spaCy NER (`nlp.pipe`, 16 texts at a time, the
stage's batch size) on the texts. Throughput is all pages over the time from the
barrier to the last process done: what two cores can do with no pipeline at all.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier

import trafilatura
from pipeline_procs import machine_busy_seconds
from spacy.language import Language

from pipeline.extractor.entities import load_ner

BATCH = 16
PROCESSES = 2
WARM_UP_PAGES = 2


@dataclass(frozen=True)
class Span:
    """One process's timed run: wall clock, its own CPU, and the machine's busy CPU counter."""

    started: float
    ended: float
    cpu: float
    machine_started: float
    machine_ended: float


@dataclass(frozen=True)
class Baseline:
    stories: int
    spans: tuple[Span, ...]

    @property
    def seconds(self) -> float:
        return max(s.ended for s in self.spans) - min(s.started for s in self.spans)

    @property
    def rate(self) -> float:
        return self.stories / self.seconds

    @property
    def others(self) -> float:
        """Cores that other work on the machine took meanwhile."""
        busy = max(s.machine_ended for s in self.spans) - min(s.machine_started for s in self.spans)
        return max(0.0, busy - sum(s.cpu for s in self.spans)) / self.seconds


def bare_calls(pages: Sequence[bytes], nlp: Language) -> int:
    """trafilatura's text of each page, then NER over the texts, BATCH at a time."""
    entities = 0
    for start in range(0, len(pages), BATCH):
        texts = [
            trafilatura.extract(page, favor_precision=True, include_comments=False) or ""
            for page in pages[start : start + BATCH]
        ]
        entities += sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=BATCH))
    return entities


def _worker(
    pages: list[bytes],
    model: str,
    barrier: Barrier,
    times: multiprocessing.Queue[Span],
) -> None:
    nlp = load_ner(model, language="en")
    bare_calls(pages[:WARM_UP_PAGES], nlp)
    barrier.wait()
    started, cpu, (machine, _) = time.time(), time.process_time(), machine_busy_seconds()
    bare_calls(pages, nlp)
    used = time.process_time() - cpu
    times.put(Span(started, time.time(), used, machine, machine_busy_seconds()[0]))


def measure(pages: Sequence[bytes], model: str) -> Baseline:
    """Wall-clock stories per second of PROCESSES processes sharing `pages` evenly."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    times: multiprocessing.Queue[Span] = context.Queue()
    shares = [list(pages[i::PROCESSES]) for i in range(PROCESSES)]
    workers = [
        context.Process(target=_worker, args=(share, model, barrier, times), daemon=True)
        for share in shares
    ]
    for worker in workers:
        worker.start()
    try:
        spans = [times.get(timeout=600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
    return Baseline(len(pages), tuple(spans))
