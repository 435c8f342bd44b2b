"""Kafka mode: poller state in a compacted topic, feeds shared out by partition.

Every feed's state is one record keyed by the feed name on
`topics.poller_state` (compacted, so the topic holds each feed's latest state
and nothing more). Replicas join one consumer group on that topic: a feed
belongs to the partition its name hashes to (the producer's own partitioner),
and a replica polls only the feeds of the partitions it holds. All replicas
tail all partitions, so each knows every feed's seen ids (cross-feed dedup)
and a replica that is handed a partition already holds its feeds' state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.clients import Producer
from pipeline.corridor.kafka.membership import (
    GroupMembership,
    TopicTail,
    partition_count,
    partition_for_key,
)
from pipeline.corridor.kafka.outage import BrokerUnavailable, BrokerWatch
from pipeline.corridor.records import Message, Output
from pipeline.errors import DecodeError, PipelineError, Retryable
from pipeline.poller.state import FeedState

log = logging.getLogger(__name__)


class KafkaStateStore:
    """Feed states as keyed records of the compacted poller-state topic."""

    def __init__(
        self,
        settings: KafkaSettings,
        producer: Producer | None = None,
        watch: BrokerWatch | None = None,
    ) -> None:
        self._settings = settings
        self._topic = settings.topics.poller_state
        self._producer = producer
        self._watch = watch or BrokerWatch(settings, "poller-state")
        self._tail: TopicTail | None = None
        self._lock = threading.Lock()

    def load(self) -> dict[str, FeedState]:
        """Every feed's state; a broker that is away is waited for (up to the deadline):
        polling without the seen ids would publish every story again."""
        with self._lock:
            if self._tail is None:
                self._tail = TopicTail(self._settings, self._topic, self._watch)
            while True:
                try:
                    states = self._decode(self._tail.read_new())
                    break
                except Retryable as exc:
                    log.warning("poller state not read yet", extra={"reason": exc.reason})
                    if self._watch.wait():
                        raise BrokerUnavailable("stopped while reading the poller state",
                                                reason="stopped") from exc  # fmt: skip
        return {state.name: state for state in states}

    def refresh(self) -> list[FeedState]:
        with self._lock:
            if self._tail is None:
                return []
            return self._decode(self._tail.read_new())

    def save(self, states: Sequence[FeedState]) -> None:
        if self._producer is None:
            raise PipelineError("this state store was opened read-only", reason="read_only")
        outputs = [Output(self._topic, s.name, s.to_bytes()) for s in states]
        self._producer.publish(outputs)

    def close(self) -> None:
        with self._lock:
            if self._tail is not None:
                self._tail.close()
                self._tail = None

    def _decode(self, messages: Sequence[Message]) -> list[FeedState]:
        latest: dict[bytes, FeedState] = {}
        for message in messages:
            if message.key is None or not message.value:
                continue
            try:
                latest[message.key] = FeedState.from_bytes(message.value)
            except DecodeError as exc:
                log.warning(
                    "unreadable poller state",
                    extra={"topic": message.topic, "partition": message.partition,
                           "offset": message.offset, "reason": exc.reason, "error": str(exc)},
                )  # fmt: skip
        return list(latest.values())


class KafkaOwnership:
    """This replica polls the feeds whose state partition the group assigned to it."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        drain_seconds: float | None = None,
        watch: BrokerWatch | None = None,
    ) -> None:
        topic = settings.topics.poller_state
        self._partitions = partition_count(settings, topic, watch)
        if not self._partitions:
            raise Retryable(f"topic {topic} has no partitions (run `topics create`)")
        self._busy: Callable[[], frozenset[str]] = frozenset
        self._drain_seconds = drain_seconds or settings.session_timeout_seconds / 3
        self._membership = GroupMembership(
            settings, topic, f"{settings.group_prefix}-poller", on_revoked=self._drain,
            watch=watch,
        )  # fmt: skip

    def check(self) -> None:
        """Raise what ended the group membership (the broker away past the deadline)."""
        self._membership.check()

    def partition_of(self, feed_name: str) -> int:
        return partition_for_key(feed_name, self._partitions)

    def owns(self, feed_name: str) -> bool:
        return self.partition_of(feed_name) in self._membership.assigned()

    def watch(self, busy: Callable[[], frozenset[str]]) -> None:
        self._busy = busy

    def _drain(self, partitions: set[int]) -> None:
        """Give the polls in flight on moving feeds a moment to save their state first."""
        deadline = time.monotonic() + self._drain_seconds
        while time.monotonic() < deadline:
            if not any(self.partition_of(name) in partitions for name in self._busy()):
                return
            time.sleep(0.05)
        log.warning("feeds still in flight while their partitions move",
                    extra={"partition": sorted(partitions)})  # fmt: skip

    def close(self) -> None:
        self._membership.close()
