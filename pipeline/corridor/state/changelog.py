"""What a state store needs from its changelog, and the one a single process uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol


class Changelog(Protocol):
    """Keyed records per partition; the latest value of a key is its state, None deletes it."""

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Queue a record; `flush` makes it durable."""

    def flush(self) -> Mapping[int, Sequence[int]]:
        """Return once every queued record is acknowledged, with the offsets they got per
        partition; `Retryable` if they cannot be."""
        ...

    def bounds(self, partition: int) -> tuple[int, int]:
        """The partition's first offset and its end (the offset its next record will get)."""
        ...

    def replay(self, partition: int, start: int, end: int) -> Iterator[tuple[bytes, bytes | None]]:
        """The records of `partition` from offset `start` up to `end`, in order."""
        ...

    def close(self) -> None: ...


class NoChangelog:
    """`newsmon run` and tests: the local file is the truth, there is nothing to restore."""

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        return None

    def flush(self) -> Mapping[int, Sequence[int]]:
        return {}

    def bounds(self, partition: int) -> tuple[int, int]:
        return 0, 0

    def replay(self, partition: int, start: int, end: int) -> Iterator[tuple[bytes, bytes | None]]:
        return iter(())

    def close(self) -> None:
        return None
