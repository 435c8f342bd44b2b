"""Group membership without records: the poller's replicas split the feeds by the
partitions of a topic they never read, and keep their state in a compacted topic they
read from its start (`TopicTail`). Also the listener every group consumer uses to hear
of partitions moving away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.clients import CALL_TIMEOUT_MS, group_consumer, security, to_message
from pipeline.corridor.kafka.outage import BrokerWatch
from pipeline.corridor.records import Message, Partition, encode_key
from pipeline.errors import Retryable

log = logging.getLogger(__name__)


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """The partition the producer's default partitioner picks for `key` (murmur2, as in Java)."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(encode_key(key)) & 0x7FFFFFFF) % partitions


def partition_count(settings: KafkaSettings, topic: str, watch: BrokerWatch | None = None) -> int:
    watch = watch or BrokerWatch(settings, "meta")
    consumer = watch.call(
        lambda: KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-meta",
            **security(settings),
        ),
        "connect",
    )
    try:
        return len(watch.call(lambda: consumer.partitions_for_topic(topic), "metadata") or ())
    finally:
        consumer.close(timeout_ms=CALL_TIMEOUT_MS)


class TopicTail:
    """Every partition of a topic from its start, then, on each `read_new`, what was added.

    A broker that is away while it connects is waited for (`watch`); a `read_new` that
    cannot reach it raises `Retryable` (counted on `watch`), and the next call goes on
    from where the last one stopped: nothing read is read twice, nothing is skipped.
    """

    def __init__(
        self, settings: KafkaSettings, topic: str, watch: BrokerWatch | None = None
    ) -> None:
        self._watch = watch or BrokerWatch(settings, "tail")
        self._consumer = self._watch.call(
            lambda: KafkaConsumer(
                bootstrap_servers=settings.bootstrap_servers,
                enable_auto_commit=False,
                client_id=f"{settings.client_id}-tail",
                **security(settings),
            ),
            "connect",
        )
        known = sorted(self._watch.call(lambda: self._consumer.partitions_for_topic(topic),
                                        "metadata") or ())  # fmt: skip
        self._partitions = [TopicPartition(topic, p) for p in known]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def read_new(self, timeout: float = 30.0) -> list[Message]:
        """Records up to the end offsets as of this call; `Retryable` if the broker is away
        or too slow (`BrokerUnavailable` once away longer than the deadline)."""
        if not self._partitions:
            return []
        try:
            messages = self._read_to_ends(timeout)
        except KafkaError as exc:
            self._watch.failed(exc)
            raise Retryable(f"state topic unreachable: {exc}", reason="state_read") from exc
        self._watch.answered()
        return messages

    def _read_to_ends(self, timeout: float) -> list[Message]:
        ends = self._consumer.end_offsets(self._partitions, timeout_ms=CALL_TIMEOUT_MS)
        pending = {
            tp for tp in self._partitions
            if self._consumer.position(tp, timeout_ms=CALL_TIMEOUT_MS) < ends[tp]
        }  # fmt: skip
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                self._watch.failed("state topic not read to its end in time")
                raise Retryable("state topic not read to its end in time", reason="state_read")
            for tp, records in self._consumer.poll(timeout_ms=500).items():
                messages.extend(to_message(r) for r in records)
                if self._consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return messages

    def close(self) -> None:
        self._consumer.close(timeout_ms=CALL_TIMEOUT_MS)


class GroupMembership:
    """Joins a consumer group on a topic only to be handed partitions; it reads no records.

    A background thread keeps polling (with every partition paused) so the
    member stays in the group; `on_revoked` runs before partitions move away,
    so the owner can finish what it holds first (keep it shorter than the session timeout).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group_id: str,
        on_revoked: Callable[[set[int]], None],
        watch: BrokerWatch | None = None,
    ) -> None:
        self._assigned: frozenset[int] = frozenset()
        self._on_revoked = on_revoked
        self._stop = threading.Event()
        self._watch = watch or BrokerWatch(settings, "member")
        self.error: BaseException | None = None
        self._consumer = group_consumer(
            settings, group_id, "member", [topic], listener=_MembershipListener(self),
            watch=self._watch,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="poller-membership", daemon=True)
        self._thread.start()

    def assigned(self) -> frozenset[int]:
        return self._assigned

    def _run(self) -> None:
        """Poll to stay in the group. While the broker is away the feeds stay held (the
        group hands them on only once it is back) and the outage is counted on the
        watch; ending the process past the deadline is the poller loop's job (`check`),
        so this thread never dies on its own."""
        while not self._stop.is_set():
            try:
                self._consumer.poll(timeout_ms=500)
                unpaused = self._consumer.assignment() - self._consumer.paused()
                if unpaused:
                    self._consumer.pause(*unpaused)
                self._report(None)
            except KafkaError as exc:
                log.warning("group membership poll failed", extra={"reason": str(exc)})
                self._report(exc)
                self._stop.wait(1.0)

    def _report(self, error: KafkaError | None) -> None:
        coordinator = getattr(self._consumer, "_coordinator", None)
        lost = coordinator is not None and coordinator.coordinator_unknown()
        try:
            if error is not None:
                self._watch.failed(error)
            elif lost:
                self._watch.failed("group coordinator unreachable")
            else:
                self._watch.answered()
        except Exception as exc:  # overdue, or not transient: `check` ends the process
            self.error = exc

    def check(self) -> None:
        """Raise what ended this membership (an outage past the deadline, a real error)."""
        if self.error is not None:
            raise self.error

    def _revoked(self, partitions: set[int]) -> None:
        self._assigned = frozenset()
        log.info("partitions revoked", extra={"partition": sorted(partitions)})
        self._on_revoked(partitions)

    def _granted(self, partitions: set[int]) -> None:
        self._assigned = frozenset(partitions)
        log.info("partitions assigned", extra={"partition": sorted(partitions)})

    def close(self) -> None:
        """Leave the group at once, so the partitions move to the other replicas."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close(autocommit=False, timeout_ms=CALL_TIMEOUT_MS)


class _MembershipListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, membership: GroupMembership) -> None:
        self._membership = membership

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._membership._revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._membership._granted({tp.partition for tp in assigned})


class RevokeListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callable[[set[Partition]], None] | None) -> None:
        self._on_revoked = on_revoked

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self._on_revoked is not None and revoked:
            self._on_revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        names = sorted((tp.topic, tp.partition) for tp in assigned)
        log.info("partitions assigned", extra={"partition": names})
