"""Deliveries waiting for their time, worked through by one lane per destination.

Used by the Kafka retry loop and by the one-process mode. The host adds tasks
with a token of its own (a Kafka position, a journal key), calls `start_due`,
and collects `finished` outcomes. A lane works through at most `batch_size` due
tasks of its destination, for at most `handoff_after_seconds`, then returns; a
destination that is down or throttled only ever occupies its own lane.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.tasks import DeliveryTask, Later, Outcome

T = TypeVar("T")

DEFAULT_BATCH = 100


@dataclass(order=True)
class _Entry(Generic[T]):
    due: float
    seq: int
    task: DeliveryTask = field(compare=False)
    token: T = field(compare=False)


@dataclass
class _Batch(Generic[T]):
    future: Future[list[Outcome]]
    tokens: list[T]
    tasks: list[DeliveryTask]

    def outcomes(self) -> list[Outcome]:
        """The lane's outcomes; a batch cancelled at shutdown comes back untried."""
        if self.future.cancelled():
            return [Later(task, attempted=False, reason="stopped") for task in self.tasks]
        return self.future.result()


class DeliveryScheduler(Generic[T]):
    """Thread-safe: `add` may be called from any thread, the rest from the host's loop."""

    def __init__(self, dispatcher: Dispatcher, *, batch_size: int = DEFAULT_BATCH) -> None:
        self._dispatcher = dispatcher
        self._batch_size = batch_size
        self._waiting: dict[str, list[_Entry[T]]] = {}
        self._running: dict[str, _Batch[T]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        workers = len(dispatcher.destination_ids) + 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notifier-lane")

    def add(self, task: DeliveryTask, token: T) -> None:
        entry = _Entry(task.not_before, next(self._seq), task, token)
        with self._lock:
            heapq.heappush(self._waiting.setdefault(task.destination, []), entry)
        self._wake.set()

    def __len__(self) -> int:
        with self._lock:
            running = sum(len(b.tokens) for b in self._running.values())
            return running + sum(len(h) for h in self._waiting.values())

    def next_due(self) -> float | None:
        """When the earliest waiting task of an idle lane is due (None: nothing to start)."""
        with self._lock:
            dues = [h[0].due for d, h in self._waiting.items() if h and d not in self._running]
        return min(dues, default=None)

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._running)

    def start_due(self) -> int:
        """Hand each idle destination its due tasks; returns how many were handed out."""
        now = self._dispatcher.clock()
        started = 0
        with self._lock:
            for dest, heap in self._waiting.items():
                if dest in self._running or not heap or heap[0].due > now:
                    continue
                entries = self._pop_due(heap, now)
                self._running[dest] = self._start(entries, now)
                started += len(entries)
        return started

    def _pop_due(self, heap: list[_Entry[T]], now: float) -> list[_Entry[T]]:
        entries: list[_Entry[T]] = []
        while heap and heap[0].due <= now and len(entries) < self._batch_size:
            entries.append(heapq.heappop(heap))
        return entries

    def _start(self, entries: list[_Entry[T]], now: float) -> _Batch[T]:
        wait_until = now + self._dispatcher.settings.handoff_after_seconds
        tasks = [e.task for e in entries]
        future = self._pool.submit(self._dispatcher.run_lane, tasks, wait_until)
        future.add_done_callback(lambda _: self._wake.set())
        return _Batch(future, [e.token for e in entries], tasks)

    def finished(self) -> list[tuple[T, Outcome]]:
        """Outcomes of the lanes that are done, each with its task's token."""
        with self._lock:
            done = [d for d, b in self._running.items() if b.future.done()]
            batches = [self._running.pop(d) for d in done]
        results: list[tuple[T, Outcome]] = []
        for batch in batches:
            results.extend(zip(batch.tokens, batch.outcomes(), strict=True))
        return results

    def discard(self, tokens: set[T]) -> int:
        """Forget waiting tasks with these tokens (their partition moved to another worker)."""
        with self._lock:
            before = sum(len(h) for h in self._waiting.values())
            for dest, heap in self._waiting.items():
                kept = [e for e in heap if e.token not in tokens]
                heapq.heapify(kept)
                self._waiting[dest] = kept
            return before - sum(len(h) for h in self._waiting.values())

    def wait(self, timeout: float) -> None:
        """Sleep until a task is added, a lane finishes or `timeout` passes."""
        self._wake.wait(max(timeout, 0.0))
        self._wake.clear()

    def wake(self) -> None:
        """Cut the host's current `wait` short (it is stopping)."""
        self._wake.set()

    def close(self) -> None:
        """Let running lanes finish their current attempt; waiting tasks stay with the host."""
        self._pool.shutdown(wait=True, cancel_futures=True)
