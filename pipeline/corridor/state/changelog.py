"""What a state store needs from its changelog, and the one a single process uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Changelog(Protocol):
    """Keyed records per partition; the latest value of a key is its state, None deletes it."""

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Queue a record; `flush` makes it durable."""

    def flush(self) -> None:
        """Return once every queued record is acknowledged; `Retryable` if it cannot be."""

    def replay(self, partition: int) -> Iterator[tuple[bytes, bytes | None]]:
        """Every record of `partition` from its start to its current end, in order."""
        ...

    def close(self) -> None: ...


class NoChangelog:
    """`newsmon run` and tests: the local file is the truth, there is nothing to restore."""

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        return None

    def flush(self) -> None:
        return None

    def replay(self, partition: int) -> Iterator[tuple[bytes, bytes | None]]:
        return iter(())

    def close(self) -> None:
        return None
