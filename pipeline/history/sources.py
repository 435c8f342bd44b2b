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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
    read that makes no progress)."""

    def __init__(self, settings: KafkaSettings, timeout: float) -> None:
        from pipeline.corridor.kafka.history import TopicHistory

        topic = settings.topics.enriched
        self.where = f"the topic {topic} on {settings.bootstrap_servers}"
        self.topic = TopicHistory(settings, topic, timeout)

    def read(self, since: float | None, until: float | None) -> HistoryRead:
        since_ms, until_ms = _ms(since), _ms(until)
        span = self.topic.span(since_ms, until_ms)
        messages = self.topic.read(span, since_ms, until_ms)
        return HistoryRead(span.size, (m.value for m in messages))

    def newest(self, limit: int, since: float | None = None) -> HistoryRead:
        span = self.topic.newest(limit)
        messages = self.topic.read(span, _ms(since), None)
        return HistoryRead(span.size, (m.value for m in messages))

    def close(self) -> None:
        self.topic.close()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)
