"""The Kafka transport: a consumer group in, an idempotent producer out, commits behind
the earliest record not yet settled.

A runner given `commit_every` commits what it settled at most that often (and
whenever its input runs dry or it stops): each commit costs the broker a log append,
and a crash re-reads at most that much (the stages' ledgers drop what was already done).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.clients import CALL_TIMEOUT_MS, Producer, group_consumer, to_message
from pipeline.corridor.kafka.membership import RevokeListener
from pipeline.corridor.kafka.offsets import OffsetTracker
from pipeline.corridor.kafka.outage import BrokerWatch, is_transient
from pipeline.corridor.records import ChunkedStage, Message, Output, Partition, Stage
from pipeline.corridor.runner import Hooks, Runner
from pipeline.corridor.settle import policy_for
from pipeline.errors import Retryable
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)

LAG_REFRESH_SECONDS = 10.0


class KafkaTransport:
    """Polls a consumer group, publishes with acks=all, commits what was acknowledged.

    A broker that goes away is ridden out (`BrokerWatch`): a poll that fails or finds no
    group coordinator returns nothing after a backoff, a commit that fails is tried again
    at the next flush, a publish keeps waiting; records in hand are kept. Only an outage
    longer than `kafka.unavailable_exit_seconds` raises (`BrokerUnavailable`).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        group_id: str,
        name: str,
        metrics: Metrics,
        *,
        commit_every: float = 0.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = ",".join(topics)
        self.stage_name = name
        self.metrics = metrics
        self.commit_every = commit_every
        self.on_revoked: Callable[[set[Partition]], None] | None = None
        """Told of partitions moving away, after their commit points are restored."""
        self.on_assigned: Callable[[set[Partition]], None] | None = None
        """Told of partitions assigned, before any of their records leaves `poll`
        (a stage restores their state here)."""
        self._unrestored: set[Partition] = set()
        self.tracker = OffsetTracker()
        self.watch = BrokerWatch(settings, name, metrics, stop)
        self.producer = Producer(settings, self.watch)
        self.consumer = group_consumer(
            settings, group_id, name, topics, listener=_Listener(self._revoked, self._assigned),
            watch=self.watch, auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
        )  # fmt: skip
        self._committed_at = time.monotonic()
        self._lag_checked = 0.0
        self._confirmed_at = time.monotonic()
        """When the group coordinator last accepted this worker as a member (an assignment or
        a commit)."""
        self._confirm_after = settings.session_timeout_seconds / 3  # a heartbeat interval

    def poll(self, timeout: float) -> list[Message]:
        try:
            polled = self.consumer.poll(timeout_ms=int(timeout * 1000))
        except KafkaError as exc:
            self.watch.failed(exc)  # BrokerUnavailable once overdue; a real error as itself
            self.watch.wait()
            return []
        messages = [to_message(r) for records in polled.values() for r in records]
        unrestored = self._restore_assigned()
        if unrestored:
            messages = self._hold_back(messages, unrestored)
        if messages and not self._still_member(messages):
            return []
        for message in messages:
            self.tracker.track(message.position)
        if unrestored:
            self.watch.wait()
        elif self._coordinator_known():
            self.watch.answered()
            self._refresh_lag()
        else:
            self.watch.failed("group coordinator unreachable")
            if not messages:
                self.watch.wait()
        return messages

    def _still_member(self, messages: list[Message]) -> bool:
        """Whether this worker still owns the partitions `messages` came from.

        A worker that has not heard its group coordinator accept it for a while (a broker
        outage, a frozen process) may have been dropped from the group without knowing yet:
        its partitions went to another replica, which has done their records' side effects,
        while the client fetched those records again from its old position. Before handing
        them out, one commit of where each partition stands asks the coordinator (it refuses
        a commit from a member it no longer knows). Refused: the records are put back and
        left to the new owner; the client rejoins at the next poll, and partitions assigned
        again are restored from their changelogs before any record goes out.
        """
        if time.monotonic() - self._confirmed_at < self._confirm_after:
            return True
        first: dict[Partition, int] = {}
        for message in messages:
            first.setdefault((message.topic, message.partition), message.offset)
        points = self.tracker.commit_points(first)
        offsets = {where: min(points.get(where, offset), offset) for where, offset in first.items()}
        try:
            self.consumer.commit(
                {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                timeout_ms=CALL_TIMEOUT_MS,
            )
        except KafkaError as exc:
            for (topic, partition), offset in offsets.items():
                self.consumer.seek(TopicPartition(topic, partition), offset)
            log.warning(
                "group membership not confirmed, records left to their partitions' owner",
                extra={"stage": self.stage_name, "partition": sorted(offsets),
                       "reason": f"{type(exc).__name__}: {exc}"},
            )  # fmt: skip
            self.metrics.membership_lapsed.labels(self.stage_name).inc()
            if is_transient(exc):
                self.watch.failed(exc)
            return False
        self.tracker.mark_committed(offsets)
        self._confirmed_at = time.monotonic()
        return True

    def _coordinator_known(self) -> bool:
        """Whether the group coordinator is known and connected: a poll returns empty,
        without an error, while the broker is away; this tells the two apart."""
        coordinator = getattr(self.consumer, "_coordinator", None)
        return coordinator is None or not coordinator.coordinator_unknown()

    def publish(self, outputs: Sequence[Output]) -> None:
        if outputs:
            self.producer.publish(outputs)

    def acknowledge(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.tracker.settle(message.position)
        if time.monotonic() - self._committed_at >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Commit up to each partition's earliest unsettled record."""
        self._committed_at = time.monotonic()
        offsets = self.tracker.committable()
        if not offsets:
            return
        if not self._coordinator_known():  # the broker is away: the next flush commits
            self.watch.failed("group coordinator unreachable")
            return
        try:
            self.consumer.commit(
                {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                timeout_ms=CALL_TIMEOUT_MS,
            )
        except KafkaError as exc:
            # The broker is away (tried again at the next flush), or the group moved on
            # (the next owner reads the records again).
            log.warning("commit failed", extra={"stage": self.stage_name, "reason": str(exc)})
            if is_transient(exc):
                self.watch.failed(exc)
            return
        self.tracker.mark_committed(offsets)
        self._confirmed_at = time.monotonic()

    def pause(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(*assigned)

    def resume(self) -> None:
        paused = self.consumer.paused()
        if paused:
            self.consumer.resume(*paused)

    def _revoked(self, partitions: set[Partition]) -> None:
        """Let go of what is held of `partitions`: the next owner reads it from the commit.

        kafka-python calls this on its IO thread while `poll()` or `close()` waits, so
        nothing here may block on the client (no commit). The consumer is rewound to
        the commit points: if a partition comes back to this worker, the client keeps
        its position, which is past what was held.
        """
        for (topic, partition), offset in self.tracker.commit_points(partitions).items():
            self.consumer.seek(TopicPartition(topic, partition), offset)
        self.tracker.forget(partitions)
        self._unrestored -= partitions
        if self.on_revoked is not None:
            self.on_revoked(partitions)

    def _assigned(self, partitions: set[Partition]) -> None:
        """Heard on the client's thread: the restore runs in `poll`, on the caller's."""
        self._unrestored |= partitions
        self._confirmed_at = time.monotonic()

    def _restore_assigned(self) -> set[Partition]:
        """Hand newly assigned partitions to `on_assigned` before their records go out;
        returns those it could not restore yet.

        A changelog that cannot be read (`Retryable`: the broker is away) is tried again at
        the next poll, and counted on the watch like any outage (`BrokerUnavailable` once
        overdue): a replica assigned partitions during a broker outage waits, as it does
        for everything else, instead of exiting.
        """
        if not self._unrestored or self.on_assigned is None:
            self._unrestored.clear()
            return set()
        partitions, self._unrestored = self._unrestored, set()
        try:
            self.on_assigned(partitions)
        except Retryable as exc:
            self._unrestored |= partitions
            log.warning(
                "state not restored yet, will retry",
                extra={"stage": self.stage_name, "partition": sorted(partitions),
                       "reason": exc.reason},
            )  # fmt: skip
            self.watch.failed(f"state not restored: {exc}")
            return partitions
        return set()

    def _hold_back(self, messages: list[Message], partitions: set[Partition]) -> list[Message]:
        """Drop the records of `partitions` and rewind to the first of them: they are read
        again once their state is restored."""
        first: dict[Partition, int] = {}
        kept = []
        for message in messages:
            where = (message.topic, message.partition)
            if where in partitions:
                first[where] = min(first.get(where, message.offset), message.offset)
            else:
                kept.append(message)
        for (topic, partition), offset in first.items():
            self.consumer.seek(TopicPartition(topic, partition), offset)
        return kept

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_SECONDS:
            return
        self._lag_checked = now
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        try:  # a gauge: skipped while the broker is away (or a partition has no position yet)
            ends = self.consumer.end_offsets(assigned, timeout_ms=CALL_TIMEOUT_MS)
            positions = {
                tp: self.consumer.position(tp, timeout_ms=CALL_TIMEOUT_MS) for tp in assigned
            }
        except KafkaError:
            return
        for tp in assigned:
            lag = max(ends.get(tp, 0) - (positions[tp] or 0), 0)
            self.metrics.consumer_lag.labels(self.stage_name, tp.topic, str(tp.partition)).set(lag)

    def close(self) -> None:
        """Leave the group so partitions move at once. What was settled is committed by
        the runner's last `flush`; after a broken pool nothing more is committed."""
        try:
            self.producer.close()
        finally:
            self.consumer.close(autocommit=False, timeout_ms=CALL_TIMEOUT_MS)


class _Listener(RevokeListener):
    """The revoke listener, also told of assignments (kafka-python lists every partition
    held after a rebalance, so a partition kept across it is restored again)."""

    def __init__(
        self,
        on_revoked: Callable[[set[Partition]], None],
        on_assigned: Callable[[set[Partition]], None],
    ) -> None:
        super().__init__(on_revoked)
        self._on_assigned = on_assigned

    def on_partitions_assigned(self, assigned: Any) -> None:
        super().on_partitions_assigned(assigned)
        if assigned:
            self._on_assigned({(tp.topic, tp.partition) for tp in assigned})


class StageRunner(Runner):
    """A stage on Kafka: the corridor's `Runner` over a `KafkaTransport`."""

    def __init__(
        self,
        stage: Stage | ChunkedStage,
        settings: KafkaSettings,
        topics: Sequence[str],
        metrics: Metrics,
        stop: threading.Event,
        *,
        group_id: str | None = None,
        chunk_size: int = 1,
        commit_every: float = 0.0,
        on_idle: Callable[[], None] | None = None,
        on_round: Callable[[], None] | None = None,
        on_published: Callable[[Sequence[Message]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.group_id = group_id or f"{settings.group_prefix}-{stage.name}"
        self.kafka = KafkaTransport(
            settings, topics, self.group_id, stage.name, metrics,
            commit_every=commit_every, stop=stop,
        )  # fmt: skip
        super().__init__(
            stage, self.kafka, policy_for(stage, settings, metrics, stop),
            poll_timeout=settings.poll_timeout_seconds, chunk_size=chunk_size,
            stuck_after=settings.max_poll_interval_seconds,
            hooks=Hooks(on_idle, on_round, on_published),
        )  # fmt: skip
        self.kafka.on_revoked = self.release

    @property
    def consumer(self) -> KafkaConsumer:
        return self.kafka.consumer

    @property
    def producer(self) -> Producer:
        return self.kafka.producer
