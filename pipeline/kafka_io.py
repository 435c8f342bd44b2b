"""The corridor: the only module that imports kafka.

A stage runner polls a batch, hands it to the stage's pure transform, publishes
what came out (waiting for every acknowledgement), dead-letters what could not
be handled, and only then commits the offsets: at-least-once, and a poison
record never blocks its partition. A runner given `commit_every` commits what it
settled at most that often (and whenever its input runs dry or it stops): each
commit costs the broker a log append, and a crash re-reads at most that much
(the rules ledger drops what was already done by story id).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from pipeline.config import KafkaSettings
from pipeline.errors import PipelineError, Retryable, Skip
from pipeline.metrics import Metrics
from pipeline.offsets import OffsetTracker, Position

log = logging.getLogger(__name__)

Headers = tuple[tuple[str, bytes], ...]
HEADER_PREFIX = "newsmon."
LAG_REFRESH_SECONDS = 10.0
# How often finished chunks are published while others run. Each check is a consumer
# poll: at 0.05 s the polls cost two extractors and the broker 0.05 cores more than at
# 0.2 s (bench/pipeline_hold.py at 6 stories/s), for about 0.06 s of median latency.
FLIGHT_CHECK_SECONDS = 0.2


@dataclass(frozen=True)
class Message:
    """One consumed record, detached from kafka-python's types."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True)
class Output:
    """One record to publish."""

    topic: str
    key: str | bytes | None
    value: bytes
    headers: Headers = ()


Result = Sequence[Output] | PipelineError


class Stage(Protocol):
    """A stage's transform as the runner sees it: one result per message, in order.

    A result is the records the message produced (maybe none) or the
    `PipelineError` that explains why it could not be handled.
    """

    name: str

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]: ...


class ChunkedStage(Stage, Protocol):
    """A stage whose chunks run elsewhere (a process pool) while the runner polls and publishes.

    `submit` returns at once with a future of the chunk's results; `handle_batch` stays
    the synchronous way in, for a chunk that failed as a whole and is retried one by one.
    """

    @property
    def in_flight_target(self) -> int: ...

    def chunk_size(self, backlog: int) -> int: ...

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]: ...


def _security(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def _encode_key(key: str | bytes | None) -> bytes | None:
    return key.encode("utf-8") if isinstance(key, str) else key


TOPIC_WAIT_SECONDS = 60.0


def group_consumer(
    settings: KafkaSettings,
    group_id: str,
    name: str,
    topics: Sequence[str],
    listener: Any = None,
    **options: Any,
) -> KafkaConsumer:
    """A consumer in `group_id`, subscribed to `topics` once the broker knows all of them.

    Subscribing before a just-created topic's metadata is known gives an empty
    assignment that kafka-python only repairs on its next metadata refresh; waiting
    first (and refreshing every 30 s) avoids a worker that sits idle for minutes.
    A topic that never appears is a clear error: run `newsmon topics create`.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=f"{settings.client_id}-{name}",
        enable_auto_commit=False,
        session_timeout_ms=int(settings.session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(settings.session_timeout_seconds * 1000 / 3),
        max_poll_interval_ms=int(settings.max_poll_interval_seconds * 1000),
        metadata_max_age_ms=30_000,
        **options,
        **_security(settings),
    )
    try:
        _await_topics(consumer, topics)
    except PipelineError:
        consumer.close()
        raise
    _see_joins_through(consumer)
    consumer.subscribe(list(topics), listener=listener)
    # Metadata fetched after subscribing reaches the group coordinator: its first join
    # then knows the partitions, instead of rejoining as soon as they are learnt.
    consumer.topics()
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


class Producer:
    """An idempotent producer (acks=all) whose `publish` returns only once all is acknowledged."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type="gzip",
            max_request_size=4 * 1024 * 1024,
            **_security(settings),
        )

    def publish(self, outputs: Sequence[Output], timeout: float = 30.0) -> None:
        futures = [
            self._producer.send(
                out.topic, key=_encode_key(out.key), value=out.value, headers=list(out.headers)
            )
            for out in outputs
        ]
        self._producer.flush(timeout=timeout)
        try:
            for future in futures:
                future.get(timeout=timeout)
        except KafkaError as exc:
            raise Retryable(f"publish failed: {exc}", reason="publish") from exc

    def close(self, timeout: float = 10.0) -> None:
        self._producer.close(timeout=timeout)


def _admin(settings: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        **_security(settings),
    )


def topic_specs(settings: KafkaSettings) -> list[NewTopic]:
    """Every topic newsmon uses; the poller state topic is compacted."""
    names = settings.topics
    plain = [names.raw, names.enriched, names.alerts, names.dead_letter, names.delivery_retry]
    specs = [NewTopic(t, settings.partitions, settings.replication_factor) for t in plain]
    specs.append(
        NewTopic(
            names.poller_state,
            settings.partitions,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
    )
    return specs


def create_topics(settings: KafkaSettings) -> list[str]:
    """Create missing topics; existing ones are left alone, so it is safe to run twice.

    Returns the names created by this call.
    """
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [s for s in topic_specs(settings) if s.name not in existing]
        created = []
        for spec in missing:
            try:
                admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.info("topic already exists topic=%s", spec.name)
        return created
    finally:
        admin.close()


def describe_topics(settings: KafkaSettings) -> dict[str, int]:
    """Partition count per existing topic (for `topics create` output and tests)."""
    admin = _admin(settings)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
    finally:
        admin.close()


def _to_message(record: Any) -> Message:
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
        **_security(settings),
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
                yield from (_to_message(r) for r in records)
                if consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        consumer.close()


# --- the stage runner -------------------------------------------------------------------


def dead_letter_output(
    settings: KafkaSettings, stage: str, message: Message, error: BaseException, attempts: int
) -> Output:
    """The original bytes and key, with the error and the source position in headers."""
    reason = error.reason if isinstance(error, PipelineError) else "crash"
    detail = str(error) if isinstance(error, PipelineError) else traceback.format_exc(limit=5)
    headers = (
        *message.headers,
        (HEADER_PREFIX + "error.stage", stage.encode()),
        (HEADER_PREFIX + "error.reason", reason.encode()),
        (HEADER_PREFIX + "error.type", type(error).__name__.encode()),
        (HEADER_PREFIX + "error.message", detail[:4000].encode("utf-8", "replace")),
        (HEADER_PREFIX + "error.attempts", str(attempts).encode()),
        (HEADER_PREFIX + "source.topic", message.topic.encode()),
        (HEADER_PREFIX + "source.partition", str(message.partition).encode()),
        (HEADER_PREFIX + "source.offset", str(message.offset).encode()),
    )
    return Output(settings.topics.dead_letter, message.key, message.value, headers)


class StageRunner:
    """Moves records between Kafka and one stage's transform, at least once."""

    def __init__(
        self,
        stage: Stage,
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
        self.stage = stage
        self.settings = settings
        self.topics = list(topics)
        self.metrics = metrics
        self.stop = stop
        self.group_id = group_id or f"{settings.group_prefix}-{stage.name}"
        self.chunk_size = chunk_size
        self.commit_every = commit_every
        self.on_idle = on_idle
        self.on_round = on_round
        self.on_published = on_published
        """Called with each chunk once its outputs are acknowledged, before it is committed."""
        self.producer = Producer(settings)
        self.consumer = self._consumer()
        self._lag_checked = 0.0
        self._committed_at = time.monotonic()
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}

    def _consumer(self) -> KafkaConsumer:
        return group_consumer(
            self.settings, self.group_id, self.stage.name, self.topics,
            listener=_RevokeListener(self._revoked),
            auto_offset_reset="earliest", max_poll_records=self.settings.max_poll_records,
        )  # fmt: skip

    def run(self) -> None:
        """Until `stop` is set: poll, handle, publish, commit. Leaves the group cleanly."""
        log.info(
            "stage started stage=%s topics=%s group=%s", self.stage.name, self.topics, self.group_id
        )
        try:
            while not self.stop.is_set():
                self.run_once()
        finally:
            self.close()

    def run_once(self, timeout: float | None = None) -> int:
        """One poll and everything it brought; returns how many records were settled."""
        wait = self.settings.poll_timeout_seconds if timeout is None else timeout
        if self.on_round is not None:
            self.on_round()
        polled = self.consumer.poll(timeout_ms=int(wait * 1000))
        messages = [_to_message(r) for records in polled.values() for r in records]
        self._refresh_lag()
        if not messages:
            self._commit_uncommitted()
            if self.on_idle is not None:
                self.on_idle()
            return 0
        done = 0
        for start in range(0, len(messages), self.chunk_size):
            chunk = messages[start : start + self.chunk_size]
            self._settle(chunk)
            done += len(chunk)
            if self.stop.is_set():
                break
        self._rewind_unsettled(messages[done:])
        return done

    def _settle(self, chunk: list[Message]) -> None:
        """Handle a chunk, publish its outputs and dead letters, then commit it."""
        started = time.monotonic()
        results = self._handle(chunk)
        outputs: list[Output] = []
        for message, result in zip(chunk, results, strict=True):
            outputs.extend(self._outputs_for(message, result))
        self._publish(outputs)
        if self.on_published is not None:
            self.on_published(chunk)
        self._commit(chunk)
        per_record = (time.monotonic() - started) / len(chunk)
        for _ in chunk:
            self.metrics.handle_seconds.labels(self.stage.name).observe(per_record)

    def _handle(self, chunk: list[Message]) -> list[Result]:
        try:
            results = list(self.stage.handle_batch(chunk))
        except Exception:
            log.exception("batch failed, handling one by one stage=%s", self.stage.name)
            return [self._handle_one(m) for m in chunk]
        if len(results) != len(chunk):
            raise RuntimeError(
                f"{self.stage.name} returned {len(results)} results for {len(chunk)}"
            )
        return results

    def _handle_one(self, message: Message) -> Result:
        try:
            return next(iter(self.stage.handle_batch([message])))
        except Exception as exc:
            log.exception(
                "record crashed the stage stage=%s offset=%s", self.stage.name, message.offset
            )
            return PipelineError(f"{type(exc).__name__}: {exc}", reason="crash")

    def _outputs_for(self, message: Message, result: Result) -> list[Output]:
        attempts = 1
        while isinstance(result, Retryable) and attempts < self.settings.max_attempts:
            self.metrics.records.labels(self.stage.name, "retried").inc()
            self._backoff(result, attempts)
            attempts += 1
            result = self._handle_one(message)
        if isinstance(result, Skip):
            self.metrics.records.labels(self.stage.name, "skipped").inc()
            return []
        if isinstance(result, PipelineError):
            return [self._dead_letter(message, result, attempts)]
        self.metrics.records.labels(self.stage.name, "ok").inc()
        return list(result)

    def _backoff(self, error: Retryable, attempts: int) -> None:
        delay = self.settings.retry_backoff_seconds * (2 ** (attempts - 1))
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        self.stop.wait(min(delay, 30.0))

    def _dead_letter(self, message: Message, error: PipelineError, attempts: int) -> Output:
        stage = self.stage.name
        log.warning(
            "dead-lettering record stage=%s topic=%s partition=%s offset=%s reason=%s error=%s",
            stage, message.topic, message.partition, message.offset, error.reason, error,
        )  # fmt: skip
        self.metrics.records.labels(stage, "dead_letter").inc()
        self.metrics.dead_letters.labels(stage, error.reason).inc()
        self.metrics.stage_errors.labels(stage, error.reason).inc()
        return dead_letter_output(self.settings, stage, message, error, attempts)

    def _publish(self, outputs: list[Output]) -> None:
        """Publish or keep trying: committing past unpublished output would lose it."""
        delay = self.settings.retry_backoff_seconds
        while True:
            try:
                self.producer.publish(outputs)
                return
            except Retryable as exc:
                log.error("publish failed, retrying stage=%s error=%s", self.stage.name, exc)
                self.stop.wait(min(delay, 30.0))
                delay = max(delay * 2, 0.5)

    def _commit(self, chunk: list[Message]) -> None:
        """Commit past `chunk`, now or with a later chunk (see `commit_every`)."""
        for m in chunk:
            tp = TopicPartition(m.topic, m.partition)
            self._uncommitted[tp] = OffsetAndMetadata(m.offset + 1, "", -1)
        if self._commit_due():
            self._commit_uncommitted()

    def _commit_due(self) -> bool:
        return time.monotonic() - self._committed_at >= self.commit_every

    def _commit_uncommitted(self) -> None:
        self._committed_at = time.monotonic()
        if not self._uncommitted:
            return
        offsets, self._uncommitted = self._uncommitted, {}
        self.consumer.commit(offsets)

    def _revoked(self, partitions: set[tuple[str, int]]) -> None:
        """Settled records of partitions moving away are read again by their next owner.

        Called on kafka-python's IO thread while `poll()` waits, so it must not block on
        the client: no commit here; the offsets this runner owed for them are dropped.
        """
        for topic, partition in partitions:
            self._uncommitted.pop(TopicPartition(topic, partition), None)

    def _rewind_unsettled(self, messages: list[Message]) -> None:
        """Records polled but not handled (stop requested) are re-read if we go on."""
        first: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            first[tp] = min(first.get(tp, m.offset), m.offset)
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_SECONDS:
            return
        self._lag_checked = now
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        try:
            ends = self.consumer.end_offsets(assigned)
        except KafkaError:
            return
        for tp in assigned:
            lag = max(ends.get(tp, 0) - self.consumer.position(tp), 0)
            self.metrics.consumer_lag.labels(self.stage.name, tp.topic, str(tp.partition)).set(lag)

    def close(self) -> None:
        """Commit what was settled, then leave the group so partitions move at once."""
        try:
            self._commit_uncommitted()
        except KafkaError as exc:  # the group moved on: the next owner reads them again
            log.warning("final commit failed stage=%s error=%s", self.stage.name, exc)
        try:
            self.producer.close()
        finally:
            self.consumer.close(autocommit=False)
        log.info("stage stopped stage=%s", self.stage.name)


@dataclass
class _Flight:
    messages: list[Message]
    future: Future[Sequence[Result]]
    started: float
    released: set[Position] = field(default_factory=set)
    """Records whose partition moved away while the chunk ran: neither published nor
    settled (if the partition came back, they are being read again)."""


class InFlightRunner(StageRunner):
    """A `StageRunner` that keeps `stage.in_flight_target` chunks running at once.

    Chunks finish in any order. Each is published as soon as it is done, and a
    partition is committed only up to its earliest record not yet published, so a
    kill at any moment re-reads records, never skips one. Polled records wait in hand
    until a chunk's place frees up. When partitions move away, what this worker holds
    of them is left to the next owner: records waiting in hand are dropped, and the
    results of chunks still running are not published for them.
    """

    def __init__(
        self,
        stage: ChunkedStage,
        settings: KafkaSettings,
        topics: Sequence[str],
        metrics: Metrics,
        stop: threading.Event,
        *,
        group_id: str | None = None,
        commit_every: float = 0.0,
        on_idle: Callable[[], None] | None = None,
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self.chunked = stage
        self.stuck_after = settings.max_poll_interval_seconds
        """A chunk running longer than this counts as hung: `on_round` is no longer called,
        as a `StageRunner`'s stops when its handler hangs (liveness probes watch it)."""
        self._tracker = OffsetTracker()
        self._waiting: list[Message] = []
        self._flights: list[_Flight] = []
        super().__init__(
            stage, settings, topics, metrics, stop,
            group_id=group_id, commit_every=commit_every, on_idle=on_idle, on_round=on_round,
        )  # fmt: skip

    def _consumer(self) -> KafkaConsumer:
        return group_consumer(
            self.settings, self.group_id, self.stage.name, self.topics,
            listener=_RevokeListener(self._revoked),
            auto_offset_reset="earliest", max_poll_records=self.settings.max_poll_records,
        )  # fmt: skip

    def run_once(self, timeout: float | None = None) -> int:
        """Settle finished chunks, start waiting ones, poll if there is room; returns
        how many records were settled."""
        wait = self.settings.poll_timeout_seconds if timeout is None else timeout
        if self.on_round is not None and not self._hung():
            self.on_round()
        settled = self._land()
        self._launch()
        if len(self._flights) < self.chunked.in_flight_target:
            self._poll(min(wait, FLIGHT_CHECK_SECONDS) if self._flights else wait)
        elif self._flights:
            futures.wait([f.future for f in self._flights], wait, futures.FIRST_COMPLETED)
        return settled + self._land()

    def _hung(self) -> bool:
        oldest = min((f.started for f in self._flights), default=None)
        return oldest is not None and time.monotonic() - oldest > self.stuck_after

    def _poll(self, wait: float) -> None:
        polled = self.consumer.poll(timeout_ms=int(wait * 1000))
        messages = [_to_message(r) for records in polled.values() for r in records]
        for message in messages:
            self._tracker.track(_position(message))
        self._waiting.extend(messages)
        self._launch()
        self._refresh_lag()
        if not messages and not self._flights:
            self._commit_settled(now=True)
            if self.on_idle is not None:
                self.on_idle()

    def _launch(self) -> None:
        while self._waiting and len(self._flights) < self.chunked.in_flight_target:
            size = self.chunked.chunk_size(len(self._waiting))
            chunk, self._waiting = self._waiting[:size], self._waiting[size:]
            self._flights.append(_Flight(chunk, self._submit(chunk), time.monotonic()))

    def _submit(self, chunk: list[Message]) -> Future[Sequence[Result]]:
        try:
            return self.chunked.submit(chunk)
        except Exception as exc:  # settled like a chunk that failed in the pool
            failed: Future[Sequence[Result]] = Future()
            failed.set_exception(exc)
            return failed

    def _land(self, *, drain: bool = False) -> int:
        """Publish every finished chunk (every chunk, waiting for them, if `drain`), then
        commit what that settled."""
        if drain:
            futures.wait([f.future for f in self._flights])
        done = [f for f in self._flights if f.future.done()]
        for flight in done:
            self._flights.remove(flight)
            self._settle_flight(flight)
        if done or drain:  # stopping commits what earlier rounds left to the pace
            self._commit_settled(now=drain)
        return sum(len(f.messages) for f in done)

    def _settle_flight(self, flight: _Flight) -> None:
        results = self._flight_results(flight)
        outputs: list[Output] = []
        kept = [
            (message, result)
            for message, result in zip(flight.messages, results, strict=True)
            if _position(message) not in flight.released
        ]
        for message, result in kept:
            outputs.extend(self._outputs_for(message, result))
        self._publish(outputs)
        for message, _ in kept:
            self._tracker.settle(_position(message))
        per_record = (time.monotonic() - flight.started) / len(flight.messages)
        for _ in flight.messages:
            self.metrics.handle_seconds.labels(self.stage.name).observe(per_record)

    def _flight_results(self, flight: _Flight) -> list[Result]:
        try:
            results = list(flight.future.result())
        except futures.BrokenExecutor:
            # The pool is gone (a process was killed): retrying one by one would only
            # dead-letter every record. Stop the worker; its records are read again.
            raise
        except Exception:
            log.exception("chunk failed, handling one by one stage=%s", self.stage.name)
            return [self._handle_one(m) for m in flight.messages]
        if len(results) != len(flight.messages):
            raise RuntimeError(
                f"{self.stage.name} returned {len(results)} results for {len(flight.messages)}"
            )
        return results

    def _commit_settled(self, *, now: bool = False) -> None:
        """Commit up to each partition's earliest unsettled record, at most every
        `commit_every` seconds unless `now`."""
        if not (now or self._commit_due()):
            return
        self._committed_at = time.monotonic()
        offsets = self._tracker.committable()
        if not offsets:
            return
        try:
            self.consumer.commit(
                {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
            )
        except KafkaError as exc:  # the group moved on: the next owner reads them again
            log.warning("commit failed stage=%s offsets=%s error=%s", self.stage.name, offsets, exc)
            return
        self._tracker.mark_committed(offsets)

    def _revoked(self, partitions: set[tuple[str, int]]) -> None:
        """Let go of what is held of `partitions`: the next owner reads it from the commit.

        kafka-python calls this on its IO thread while `poll()` or `close()` waits, so
        nothing here may block on the client (no commit: every landed chunk was committed
        already). The consumer is rewound to the commit points: if a partition comes back
        to this worker, the client keeps its position, which is past what was held.
        """
        for (topic, partition), offset in self._tracker.commit_points(partitions).items():
            self.consumer.seek(TopicPartition(topic, partition), offset)
        self._tracker.forget(partitions)
        for flight in self._flights:
            flight.released.update(
                _position(m) for m in flight.messages if (m.topic, m.partition) in partitions
            )
        kept = [m for m in self._waiting if (m.topic, m.partition) not in partitions]
        log.info(
            "partitions revoked stage=%s partitions=%s released=%s",
            self.stage.name, sorted(partitions), len(self._waiting) - len(kept),
        )  # fmt: skip
        self._waiting = kept

    def close(self) -> None:
        """Finish the chunks in flight (SIGTERM: what is in hand is done), then leave."""
        try:
            self._land(drain=True)
        except futures.BrokenExecutor:
            log.error("chunks in flight lost with their pool stage=%s", self.stage.name)
        finally:
            super().close()


def _position(message: Message) -> Position:
    return (message.topic, message.partition, message.offset)


# --- poller: state-topic tail and group membership (used by pipeline.poller.kafka_state) ---


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """The partition the producer's default partitioner picks for `key` (murmur2, as in Java)."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(_encode_key(key)) & 0x7FFFFFFF) % partitions


def partition_count(settings: KafkaSettings, topic: str) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-meta",
        **_security(settings),
    )
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


class TopicTail:
    """Every partition of a topic from its start, then, on each `read_new`, what was added."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            client_id=f"{settings.client_id}-tail",
            **_security(settings),
        )
        known = sorted(self._consumer.partitions_for_topic(topic) or ())
        self._partitions = [TopicPartition(topic, p) for p in known]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def read_new(self, timeout: float = 30.0) -> list[Message]:
        """Records up to the end offsets as of this call; `Retryable` if the broker is too slow."""
        if not self._partitions:
            return []
        ends = self._consumer.end_offsets(self._partitions)
        pending = {tp for tp in self._partitions if self._consumer.position(tp) < ends[tp]}
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise Retryable("state topic not read to its end in time", reason="state_read")
            for tp, records in self._consumer.poll(timeout_ms=500).items():
                messages.extend(_to_message(r) for r in records)
                if self._consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return messages

    def close(self) -> None:
        self._consumer.close()


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
    ) -> None:
        self._assigned: frozenset[int] = frozenset()
        self._on_revoked = on_revoked
        self._stop = threading.Event()
        self._consumer = group_consumer(
            settings, group_id, "member", [topic], listener=_MembershipListener(self)
        )
        self._thread = threading.Thread(target=self._run, name="poller-membership", daemon=True)
        self._thread.start()

    def assigned(self) -> frozenset[int]:
        return self._assigned

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consumer.poll(timeout_ms=500)
                unpaused = self._consumer.assignment() - self._consumer.paused()
                if unpaused:
                    self._consumer.pause(*unpaused)
            except KafkaError as exc:
                log.warning("group membership poll failed error=%s", exc)
                self._stop.wait(1.0)

    def _revoked(self, partitions: set[int]) -> None:
        self._assigned = frozenset()
        log.info("partitions revoked partitions=%s", sorted(partitions))
        self._on_revoked(partitions)

    def _granted(self, partitions: set[int]) -> None:
        self._assigned = frozenset(partitions)
        log.info("partitions assigned partitions=%s", sorted(partitions))

    def close(self) -> None:
        """Leave the group at once, so the partitions move to the other replicas."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close(autocommit=False)


class _MembershipListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, membership: GroupMembership) -> None:
        self._membership = membership

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._membership._revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._membership._granted({tp.partition for tp in assigned})


# --- notifier: a consumer whose records are settled out of order (delivery retries) ---------


class OffsetConsumer:
    """A group consumer for a runner that holds records and commits explicit offsets.

    `on_revoked` gets the (topic, partition) pairs about to move away, before they
    do, so the runner can commit what it settled and drop what it holds.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        group_id: str,
        name: str,
        on_revoked: Callable[[set[tuple[str, int]]], None] | None = None,
    ) -> None:
        self._consumer = group_consumer(
            settings, group_id, name, topics, listener=_RevokeListener(on_revoked),
            auto_offset_reset="earliest", max_poll_records=settings.max_poll_records,
        )  # fmt: skip

    def poll(self, timeout: float) -> list[Message]:
        polled = self._consumer.poll(timeout_ms=int(timeout * 1000))
        return [_to_message(r) for records in polled.values() for r in records]

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Commit next-offsets per partition; False if the group moved on (not an error)."""
        if not offsets:
            return True
        try:
            self._consumer.commit(
                {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
            )
        except KafkaError as exc:
            log.warning("commit failed offsets=%s error=%s", offsets, exc)
            return False
        return True

    def seek(self, offsets: dict[tuple[str, int], int]) -> None:
        """Read these partitions again from these offsets (records released unsettled)."""
        for (topic, partition), offset in offsets.items():
            self._consumer.seek(TopicPartition(topic, partition), offset)

    def pause(self) -> None:
        assigned = self._consumer.assignment()
        if assigned:
            self._consumer.pause(*assigned)

    def resume(self) -> None:
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class _RevokeListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callable[[set[tuple[str, int]]], None] | None) -> None:
        self._on_revoked = on_revoked

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self._on_revoked is not None and revoked:
            self._on_revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        names = sorted((tp.topic, tp.partition) for tp in assigned)
        log.info("partitions assigned partitions=%s", names)
