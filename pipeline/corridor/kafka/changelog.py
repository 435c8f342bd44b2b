"""A compacted topic as a state store's changelog: written per partition, replayed on
assignment (`pipeline/corridor/state/`).

The changelog's partition p holds the state of the input's partition p, so it
needs at least as many partitions as the input topic (`topics create` gives
both `kafka.partitions`). Writes use their own idempotent producer (acks=all):
`flush` waits for them and is called before the decision's outputs are
published, so state is never behind what went out.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.clients import security
from pipeline.corridor.kafka.outage import BrokerWatch
from pipeline.errors import Retryable

REPLAY_TIMEOUT_SECONDS = 60.0


class KafkaChangelog:
    def __init__(self, settings: KafkaSettings, topic: str, name: str) -> None:
        self.topic = topic
        self._settings = settings
        self._name = name
        # A replica that starts while the broker is away waits for it, as its other
        # clients do (up to `kafka.unavailable_exit_seconds`), instead of exiting.
        self._producer = BrokerWatch(settings, f"{name}-changelog").call(
            lambda: KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.client_id}-{name}-changelog",
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                **security(settings),
            ),
            "connect",
        )
        self._futures: list[Any] = []
        self._lock = threading.Lock()  # the notifier's lanes write and flush from their threads
        self._reader: KafkaConsumer | None = None

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        try:
            with self._lock:
                self._futures.append(
                    self._producer.send(self.topic, key=key, value=value, partition=partition)
                )
        except KafkaError as exc:
            raise Retryable(f"changelog {self.topic}: {exc}", reason="state") from exc

    def flush(self, timeout: float = 30.0) -> dict[int, list[int]]:
        """Wait for every queued record; returns the offsets they got, per partition."""
        with self._lock:
            futures, self._futures = self._futures, []
            if not futures:
                return {}
            acked: dict[int, list[int]] = {}
            try:
                self._producer.flush(timeout=timeout)
                for future in futures:
                    metadata = future.get(timeout=timeout)
                    acked.setdefault(metadata.partition, []).append(metadata.offset)
            except KafkaError as exc:
                raise Retryable(f"changelog {self.topic}: {exc}", reason="state") from exc
            return acked

    def bounds(self, partition: int) -> tuple[int, int]:
        tp = TopicPartition(self.topic, partition)
        try:
            reader = self._reader_consumer()
            begin = reader.beginning_offsets([tp])[tp]
            end = reader.end_offsets([tp])[tp]
        except KafkaError as exc:
            raise Retryable(f"changelog {self.topic}: {exc}", reason="state") from exc
        return int(begin), int(end)

    def replay(self, partition: int, start: int, end: int) -> Iterator[tuple[bytes, bytes | None]]:
        tp = TopicPartition(self.topic, partition)
        try:
            reader = self._reader_consumer()
            reader.assign([tp])
            reader.seek(tp, start)
            deadline = time.monotonic() + REPLAY_TIMEOUT_SECONDS
            while reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise Retryable(
                        f"changelog {self.topic}[{partition}] not replayed in time", reason="state"
                    )
                for record in reader.poll(timeout_ms=500).get(tp, []):
                    if record.offset < end:
                        yield record.key or b"", record.value
        except KafkaError as exc:
            raise Retryable(f"changelog {self.topic}: {exc}", reason="state") from exc

    def _reader_consumer(self) -> KafkaConsumer:
        if self._reader is None:
            self._reader = KafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=f"{self._settings.client_id}-{self._name}-restore",
                enable_auto_commit=False,
                **security(self._settings),
            )
        return self._reader

    def close(self) -> None:
        # what is not acknowledged now is decided again by whoever reads the input next
        with contextlib.suppress(Retryable):
            self.flush(timeout=10.0)
        self._producer.close(timeout=10.0)
        if self._reader is not None:
            self._reader.close()
