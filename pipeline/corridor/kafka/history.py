"""A topic read as history: by time, by a consumer in no group.

`newsmon backtest` and the rules stage's reload flood check read the enriched topic this
way. The consumer has no `group_id`: it assigns itself the partitions, so it never joins
the live workers' groups, never triggers their rebalance and never commits. Where to start
comes from `offsets_for_times` (the first record at or after the start time, by record
timestamp: when the extractor published the story); where to stop is fixed when the read
begins (the end offsets of that moment, or the first record at or after the end time),
so a read over a topic that keeps growing still ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.clients import security, to_message
from pipeline.corridor.records import Message
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

POLL_MS = 500


class BrokerUnreachable(PipelineError):
    """No broker answered within the reader's deadline."""

    reason = "broker_unreachable"


@dataclass(frozen=True)
class Span:
    """Offsets to read per partition, [start, stop): `size` records at most."""

    ranges: dict[TopicPartition, tuple[int, int]]

    @property
    def size(self) -> int:
        return sum(stop - start for start, stop in self.ranges.values())


class TopicHistory:
    """One topic, read by time or from its tail. `timeout` bounds every wait on the broker:
    connecting, each look-up, and a read that makes no progress."""

    def __init__(self, settings: KafkaSettings, topic: str, timeout: float) -> None:
        self.topic = topic
        self.timeout = timeout
        self._where = settings.bootstrap_servers
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=settings.bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # a start that retention deleted meanwhile
                client_id=f"{settings.client_id}-history",
                bootstrap_timeout_ms=int(timeout * 1000),
                request_timeout_ms=max(int(timeout * 1000), POLL_MS * 2 + 1000),
                **security(settings),
            )
        except KafkaTimeoutError as exc:
            raise self._unreachable() from exc
        try:
            self.partitions = self._partitions()
        except BaseException:
            self.close()
            raise

    def _unreachable(self) -> BrokerUnreachable:
        return BrokerUnreachable(
            f"no Kafka broker answered at {self._where} within {self.timeout:g} s "
            "(kafka.bootstrap_servers)"
        )

    def _partitions(self) -> list[TopicPartition]:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                found = self._consumer.partitions_for_topic(self.topic)
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise self._unreachable() from exc
                found = None
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"topic {self.topic} not found on {self._where}: run `newsmon topics create`",
                    reason="no_topic",
                )
            time.sleep(0.2)

    def _ask(self, what: str, call: Callable[..., Any], *args: Any) -> dict[TopicPartition, Any]:
        """One offsets look-up, its failure a clear error."""
        try:
            found: dict[TopicPartition, Any] = call(*args)
        except KafkaTimeoutError as exc:
            raise self._unreachable() from exc
        except KafkaError as exc:
            raise PipelineError(f"{what} of {self.topic}: {exc}", reason="kafka") from exc
        return found

    def span(self, since_ms: int | None, until_ms: int | None) -> Span:
        """The records of [since_ms, until_ms) by timestamp, up to the end of now."""
        ends = self._ask("end offsets", self._consumer.end_offsets, self.partitions)
        begins = self._ask("start offsets", self._consumer.beginning_offsets, self.partitions)
        starts = {tp: int(begins[tp]) for tp in self.partitions}
        if since_ms is not None:
            starts = self._offsets_at(since_ms, ends)
        stops = {tp: int(ends[tp]) for tp in self.partitions}
        if until_ms is not None:
            stops = {tp: min(stops[tp], o) for tp, o in self._offsets_at(until_ms, ends).items()}
        return Span({tp: (starts[tp], max(starts[tp], stops[tp])) for tp in self.partitions})

    def _offsets_at(self, at_ms: int, ends: dict[TopicPartition, Any]) -> dict[TopicPartition, int]:
        """The first offset at or after `at_ms` per partition (the end if there is none)."""
        asked = {tp: at_ms for tp in self.partitions}
        found = self._ask("offsets for times", self._consumer.offsets_for_times, asked)
        offsets = {}
        for tp in self.partitions:
            hit = found.get(tp)
            offsets[tp] = int(hit.offset) if hit is not None else int(ends[tp])
        return offsets

    def newest(self, limit: int) -> Span:
        """About the newest `limit` records: the same share of each partition's tail."""
        whole = self.span(None, None)
        share = -(-limit // max(len(self.partitions), 1))
        return Span(
            {tp: (max(start, stop - share), stop) for tp, (start, stop) in whole.ranges.items()}
        )

    def read(
        self, span: Span, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[Message]:
        """The records of `span`, partition by partition interleaved as fetched; records
        stamped outside [since_ms, until_ms) (a producer's clock off) are left out."""
        pending = {tp: r for tp, r in span.ranges.items() if r[1] > r[0]}
        if not pending:
            return
        self._consumer.assign(list(pending))
        for tp, (start, _) in pending.items():
            self._consumer.seek(tp, start)
        quiet_since = time.monotonic()
        while pending:
            fetched = self._consumer.poll(timeout_ms=POLL_MS)
            if fetched:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > self.timeout:
                raise self._unreachable()
            for tp, records in fetched.items():
                stop = pending.get(tp, (0, 0))[1]
                for record in records:
                    if record.offset < stop and _within(record.timestamp, since_ms, until_ms):
                        yield to_message(record)
            for tp in [tp for tp, (_, stop) in pending.items() if self._at(tp) >= stop]:
                del pending[tp]
                self._consumer.pause(tp)

    def _at(self, tp: TopicPartition) -> int:
        return int(self._consumer.position(tp, timeout_ms=int(self.timeout * 1000)))

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def _within(stamp_ms: int | None, since_ms: int | None, until_ms: int | None) -> bool:
    if stamp_ms is None:
        return True
    return (since_ms is None or stamp_ms >= since_ms) and (until_ms is None or stamp_ms < until_ms)
