"""Kafka client set-up: the producer, group consumers (with the group-join guard), the
admin client and the topics newsmon uses. With `transport.py` and `membership.py`, the
only code that imports kafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from pipeline.config import KafkaSettings, RulesSettings
from pipeline.corridor.kafka.outage import BrokerWatch, is_transient
from pipeline.corridor.records import Message, Output, encode_key
from pipeline.errors import PipelineError, Retryable

log = logging.getLogger(__name__)


def security(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


TOPIC_WAIT_SECONDS = 60.0
CALL_TIMEOUT_MS = 10_000
"""Longest a commit, offset look-up or close waits on the broker before the caller hears
of it (and the broker watch counts an outage), instead of kafka-python's 30 s default."""


def group_consumer(
    settings: KafkaSettings,
    group_id: str,
    name: str,
    topics: Sequence[str],
    listener: Any = None,
    *,
    watch: BrokerWatch | None = None,
    **options: Any,
) -> KafkaConsumer:
    """A consumer in `group_id`, subscribed to `topics` once the broker knows all of them.

    Subscribing before a just-created topic's metadata is known gives an empty
    assignment that kafka-python only repairs on its next metadata refresh; waiting
    first (and refreshing every 30 s) avoids a worker that sits idle for minutes.
    A topic that never appears is a clear error: run `newsmon topics create`. A broker
    that is not there yet is waited for (`watch`), up to `kafka.unavailable_exit_seconds`.
    """
    watch = watch or BrokerWatch(settings, name)

    def connect() -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=group_id,
            client_id=f"{settings.client_id}-{name}",
            enable_auto_commit=False,
            session_timeout_ms=int(settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(settings.session_timeout_seconds * 1000 / 3),
            max_poll_interval_ms=int(settings.max_poll_interval_seconds * 1000),
            metadata_max_age_ms=30_000,
            **options,
            **security(settings),
        )

    consumer = watch.call(connect, "connect")
    try:
        watch.call(lambda: _await_topics(consumer, topics), "topic metadata")
        _see_joins_through(consumer)
        consumer.subscribe(list(topics), listener=listener)
        # Metadata fetched after subscribing reaches the group coordinator: its first join
        # then knows the partitions, instead of rejoining as soon as they are learnt.
        watch.call(consumer.topics, "topic metadata")
    except PipelineError:
        consumer.close(autocommit=False, timeout_ms=CALL_TIMEOUT_MS)
        raise
    return consumer


def _see_joins_through(consumer: KafkaConsumer) -> None:
    """Never let a `poll()` that timed out mid-rebalance lose the group join it started.

    kafka-python 3.0 rejoins without setting its `rejoin_needed` flag when the group
    leader sees new metadata (a topic that just appeared, partitions added). If
    `poll()` returns while that JoinGroup/SyncGroup is in flight and the answer lands
    between two polls, nothing ever completes the join: the member sends no more
    heartbeats, the broker drops it after `session_timeout`, and the worker sits on
    a stale assignment for good (seen in CI: a notifier replica's retry loop stopped
    reading). Like the Java client's `rejoinIncomplete()`, a join in flight keeps the
    group "needing a rejoin", and `poll()` gives it up to a session timeout to finish
    instead of giving up at once.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator, "_join_task"):
        return  # not the kafka-python 3.0 coordinator this guards
    need_rejoin = coordinator.need_rejoin
    ensure_active_group = coordinator.ensure_active_group
    patience_ms = consumer.config["session_timeout_ms"]

    def joining() -> bool:
        return coordinator._join_task is not None

    def need_rejoin_or_joining() -> bool:
        return bool(need_rejoin()) or joining()

    def ensure_active_group_patiently(timeout_ms: float | None = None) -> bool:
        if joining() and timeout_ms is not None:
            timeout_ms = max(timeout_ms, patience_ms)
        return bool(ensure_active_group(timeout_ms=timeout_ms))

    coordinator.need_rejoin = need_rejoin_or_joining
    coordinator.ensure_active_group = ensure_active_group_patiently


def _await_topics(consumer: KafkaConsumer, topics: Sequence[str]) -> None:
    deadline = time.monotonic() + TOPIC_WAIT_SECONDS
    missing = list(topics)
    while missing:
        missing = [t for t in missing if not consumer.partitions_for_topic(t)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise PipelineError(
                f"topics {missing} not found on {consumer.config['bootstrap_servers']}: "
                "run `newsmon topics create`",
                reason="no_topic",
            )
        time.sleep(0.5)


FLUSH_SLICE_SECONDS = 5.0
"""A flush not done within this counts the broker as away (and is waited for again)."""


class Producer:
    """An idempotent producer (acks=all) whose `publish` returns only once all is acknowledged.

    While the broker is away, `publish` keeps waiting on the records it already handed to
    the client (which resends them itself, so they are not written twice) and counts the
    outage on `watch`; it raises `Retryable` when the client gave up on them (after
    kafka-python's `delivery_timeout_ms`) or when the worker is stopping, and
    `BrokerUnavailable` past `kafka.unavailable_exit_seconds`.
    """

    def __init__(self, settings: KafkaSettings, watch: BrokerWatch | None = None) -> None:
        self.watch = watch or BrokerWatch(settings, "producer")
        self._producer = self.watch.call(
            lambda: KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.client_id}-producer",
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                compression_type="gzip",
                max_request_size=4 * 1024 * 1024,
                max_block_ms=CALL_TIMEOUT_MS,
                **security(settings),
            ),
            "connect producer",
        )

    def publish(self, outputs: Sequence[Output]) -> None:
        if not outputs:
            return
        try:
            futures = [
                self._producer.send(
                    out.topic, key=encode_key(out.key), value=out.value, headers=list(out.headers)
                )
                for out in outputs
            ]
        except KafkaTimeoutError as exc:  # no metadata for a topic within max_block_ms
            self.watch.failed(exc)
            raise Retryable(f"publish failed: {exc}", reason="publish") from exc
        self._await_flush()
        try:
            for future in futures:
                future.get(timeout=FLUSH_SLICE_SECONDS)
        except KafkaError as exc:
            if is_transient(exc):
                self.watch.failed(exc)
            raise Retryable(f"publish failed: {exc}", reason="publish") from exc
        self.watch.answered()

    def _await_flush(self) -> None:
        while True:
            try:
                self._producer.flush(timeout=FLUSH_SLICE_SECONDS)
                return
            except KafkaTimeoutError as exc:
                self.watch.failed(exc)  # BrokerUnavailable once overdue
                if self.watch.stop.is_set():
                    raise Retryable("stopped while the broker was away", reason="publish") from exc

    def close(self, timeout: float = 10.0) -> None:
        self._producer.close(timeout=timeout)


def _admin(settings: KafkaSettings, watch: BrokerWatch | None = None) -> KafkaAdminClient:
    return (watch or BrokerWatch(settings, "admin")).call(
        lambda: KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-admin",
            **security(settings),
        ),
        "connect admin",
    )


DAY_MS = 86_400_000
DEFAULT_HISTORY_DAYS: float = RulesSettings.model_fields["history_days"].default
RETENTION = "retention.ms"


def history_retention_ms(history_days: float) -> int:
    """The enriched topic is the history on Kafka (`newsmon backtest`, the reload flood
    check, the console's feeder): it keeps stories at least `rules.history_days`."""
    return int(history_days * DAY_MS)


def topic_specs(
    settings: KafkaSettings, history_days: float = DEFAULT_HISTORY_DAYS
) -> list[NewTopic]:
    """Every topic newsmon uses; the state topics (the poller's, the changelogs) are compacted.

    A changelog's partition p holds the state of its input's partition p, so the
    changelogs have as many partitions as the topics they follow. Replicated topics get
    `min.insync.replicas` (capped at the replication factor), so that acks=all means that
    many copies. The enriched topic keeps `history_days` of stories (`retention.ms`).
    """
    names = settings.topics
    plain = [
        names.raw, names.enriched, names.alerts, names.dead_letter, names.delivery_retry,
        names.alert_candidates,
    ]  # fmt: skip
    compacted = [names.poller_state, names.rules_state, names.notifier_state]
    replicated: dict[str, str] = {}
    if settings.replication_factor > 1:
        insync = min(settings.min_insync_replicas, settings.replication_factor)
        replicated = {"min.insync.replicas": str(insync)}
    history = {RETENTION: str(history_retention_ms(history_days))}
    specs = [
        NewTopic(
            t,
            settings.partitions,
            settings.replication_factor,
            topic_configs={**replicated, **(history if t == names.enriched else {})},
        )
        for t in plain
    ]
    specs.extend(
        NewTopic(
            t,
            settings.partitions,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact", **replicated},
        )
        for t in compacted
    )
    return specs


def create_topics(
    settings: KafkaSettings,
    watch: BrokerWatch | None = None,
    history_days: float = DEFAULT_HISTORY_DAYS,
) -> list[str]:
    """Create missing topics; existing ones are left alone (but an enriched topic that keeps
    less than `history_days` is given that retention), so it is safe to run twice.
    A broker that is away is waited for (`watch`), as a worker starting with it would.

    Returns the names created by this call.
    """
    watch = watch or BrokerWatch(settings, "admin")
    admin = _admin(settings, watch)
    try:
        existing = set(watch.call(admin.list_topics, "list topics"))
        specs = topic_specs(settings, history_days)
        missing = [s for s in specs if s.name not in existing]
        created = []
        for spec in missing:
            try:
                watch.call(partial(admin.create_topics, [spec]), "create topics")
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.info("topic already exists", extra={"topic": spec.name})
        if settings.topics.enriched in existing:
            keep = partial(
                _keep_at_least, admin, settings.topics.enriched, history_retention_ms(history_days)
            )
            watch.call(keep, "retention")
        return created
    finally:
        admin.close()


def topic_retention_ms(admin: KafkaAdminClient, topic: str) -> int:
    """The topic's `retention.ms` in force (its own, else the broker's); -1 is forever."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {RETENTION: None})
    found = admin.describe_configs([resource], config_filter="all")
    return int(found["topic"][topic][RETENTION]["value"])


def _keep_at_least(admin: KafkaAdminClient, topic: str, wanted_ms: int) -> None:
    """Raise a topic's retention to `wanted_ms`; a longer one (or forever) is left alone."""
    current = topic_retention_ms(admin, topic)
    if current == -1 or current >= wanted_ms:
        return
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {RETENTION: str(wanted_ms)})
    admin.alter_configs([resource], incremental=True)
    log.info(
        "topic retention raised to the history it must keep",
        extra={"topic": topic, "retention_ms": wanted_ms, "before_ms": current},
    )


def describe_topics(settings: KafkaSettings) -> dict[str, int]:
    """Partition count per existing topic (for `topics create` output and tests)."""
    admin = _admin(settings)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
    finally:
        admin.close()


def to_message(record: Any) -> Message:
    return Message(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple((k, v or b"") for k, v in (record.headers or [])),
        timestamp_ms=record.timestamp or 0,
    )


def read_to_end(
    settings: KafkaSettings, topic: str, partitions: Sequence[int] | None = None
) -> Iterator[Message]:
    """Every record of a topic (or of some of its partitions) up to its current end."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        client_id=f"{settings.client_id}-reader",
        **security(settings),
    )
    try:
        known = consumer.partitions_for_topic(topic) or set()
        wanted = [
            TopicPartition(topic, p) for p in sorted(known) if partitions is None or p in partitions
        ]
        if not wanted:
            return
        consumer.assign(wanted)
        consumer.seek_to_beginning(*wanted)
        ends = consumer.end_offsets(wanted)
        pending = {tp for tp in wanted if ends[tp] > consumer.position(tp)}
        while pending:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                yield from (to_message(r) for r in records)
                if consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        consumer.close()
