"""Where the history of enriched stories is read from: one interface, two transports.

- `newsmon run` keeps it in the history store (`store.py`, `rules.history_days`, pruned);
- on Kafka it is the enriched topic itself (kept that long by `newsmon topics create`),
  read by a consumer in no group (`corridor/kafka/history.py`).

`newsmon backtest` reads a time range of it; the rules stage's reload flood check reads
its newest stories. Times are epoch seconds: on Kafka the record's timestamp (when the
extractor published the story), in the store when `newsmon run` stored it (as it left
the rules stage): both say when the story went through the pipeline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from pipeline.config import KafkaSettings
from pipeline.errors import PipelineError
from pipeline.history.store import FILENAME, HistoryStore


@dataclass
class HistoryRead:
    """Stories' wire bytes, oldest first, and how many there are at most (for progress)."""

    size: int
    payloads: Iterator[bytes]


class History(Protocol):
    where: str
    """For messages: which history this is."""

    def read(self, since: float | None, until: float | None) -> HistoryRead:
        """The stories of [since, until); None is the start or the end of what is kept."""
        ...

    def newest(self, limit: int, since: float | None = None) -> HistoryRead:
        """About the `limit` newest stories (not before `since`)."""
        ...

    def close(self) -> None: ...


class LocalHistory:
    """The history store `newsmon run` writes (read beside it: SQLite WAL)."""

    def __init__(self, store: HistoryStore, *, owned: bool = False) -> None:
        self.store = store
        self.where = f"the history store {store.path}"
        self._owned = owned

    @classmethod
    def open(cls, state_dir: Path) -> LocalHistory:
        """The store in `state_dir`; a clear error if `newsmon run` never kept one there."""
        path = state_dir / FILENAME
        if not path.is_file():
            raise PipelineError(
                f"no history at {path}: `newsmon run --state-dir {state_dir}` keeps it "
                "(on Kafka use --source kafka)",
                reason="no_history",
            )
        return cls(HistoryStore(path), owned=True)

    def read(self, since: float | None, until: float | None) -> HistoryRead:
        start, end = since if since is not None else 0.0, until if until is not None else _END
        size = self.store.count_stories(start, end)
        return HistoryRead(size, (p for _, p in self.store.story_payloads(start, end)))

    def newest(self, limit: int, since: float | None = None) -> HistoryRead:
        found = self.store.newest_story_payloads(limit, since)
        found.reverse()
        return HistoryRead(len(found), iter(found))

    def close(self) -> None:
        if self._owned:
            self.store.close()


_END = float("inf")


class KafkaHistory:
    """The enriched topic; `timeout` bounds each wait on the broker (connect, look-ups, a
    read that makes no progress). Records are fetched on a thread a few batches ahead of
    the reader (`prefetched`), so waiting on the broker overlaps with matching."""

    def __init__(self, settings: KafkaSettings, timeout: float) -> None:
        from pipeline.corridor.kafka.history import TopicHistory

        topic = settings.topics.enriched
        self.where = f"the topic {topic} on {settings.bootstrap_servers}"
        self.topic = TopicHistory(settings, topic, timeout)
        self._reading: Generator[bytes] | None = None

    def read(self, since: float | None, until: float | None) -> HistoryRead:
        since_ms, until_ms = _ms(since), _ms(until)
        span = self.topic.span(since_ms, until_ms)
        messages = self.topic.read(span, since_ms, until_ms)
        return HistoryRead(span.size, self._prefetched(m.value for m in messages))

    def newest(self, limit: int, since: float | None = None) -> HistoryRead:
        span = self.topic.newest(limit)
        messages = self.topic.read(span, _ms(since), None)
        return HistoryRead(span.size, self._prefetched(m.value for m in messages))

    def _prefetched(self, payloads: Iterator[bytes]) -> Iterator[bytes]:
        self._stop_reading()
        self._reading = prefetched(payloads)
        return self._reading

    def _stop_reading(self) -> None:
        """The consumer is the fetching thread's until it has stopped."""
        if self._reading is not None:
            self._reading.close()
            self._reading = None

    def close(self) -> None:
        self._stop_reading()
        self.topic.close()


PREFETCH_BATCH = 500
PREFETCH_DEPTH = 8
_DONE = object()


def prefetched(
    payloads: Iterator[bytes], batch: int = PREFETCH_BATCH, depth: int = PREFETCH_DEPTH
) -> Generator[bytes]:
    """`payloads` read on a thread, at most `depth` batches ahead; its error is raised
    here. Closing the generator stops the thread (and waits for it) before returning."""
    ahead: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def fill() -> None:
        try:
            chunk: list[bytes] = []
            for payload in payloads:
                if stop.is_set():
                    return
                chunk.append(payload)
                if len(chunk) == batch:
                    put(chunk)
                    chunk = []
            put(chunk)
            put(_DONE)
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)

    thread = threading.Thread(target=fill, name="history-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield from cast(list[bytes], item)
    finally:
        stop.set()
        thread.join()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)
