"""What travels the corridor, whatever the transport: records in, records out, and the
contract a stage's transform keeps with the runner."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from pipeline.errors import PipelineError

Headers = tuple[tuple[str, bytes], ...]
HEADER_PREFIX = "newsmon."
Partition = tuple[str, int]
Position = tuple[str, int, int]


@dataclass(frozen=True)
class Message:
    """One consumed record (a Kafka record, or a row of the embedded queue)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def position(self) -> Position:
        return (self.topic, self.partition, self.offset)


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


class Transport(Protocol):
    """What a broker (or the embedded queue) does for the runner; nothing more.

    `poll` returns records not yet handed out; `publish` makes outputs durable or raises
    `Retryable`; `acknowledge` marks records settled (their outputs are published), so
    they are never read again; `flush` makes pending acknowledgements durable now.
    """

    name: str

    def poll(self, timeout: float) -> list[Message]: ...

    def publish(self, outputs: Sequence[Output]) -> None: ...

    def acknowledge(self, messages: Sequence[Message]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def encode_key(key: str | bytes | None) -> bytes | None:
    return key.encode("utf-8") if isinstance(key, str) else key
