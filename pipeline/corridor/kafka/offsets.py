"""Which offsets may be committed when records are settled out of order.

The notifier's retry loop holds records until their time comes, and the extractor
keeps several chunks in flight, so a later record of a partition can be done
before an earlier one. The commit point of a partition is
its earliest unsettled offset: committing further would lose that record if the
worker died.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.corridor.records import Partition, Position


@dataclass
class _PartitionState:
    pending: set[int] = field(default_factory=set)
    next_offset: int = 0
    committed: int | None = None

    def commit_point(self) -> int:
        return min(self.pending) if self.pending else self.next_offset


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[Partition, _PartitionState] = {}

    def track(self, position: Position) -> None:
        topic, partition, offset = position
        state = self._partitions.setdefault((topic, partition), _PartitionState())
        state.pending.add(offset)
        state.next_offset = max(state.next_offset, offset + 1)

    def tracks(self, position: Position) -> bool:
        state = self._partitions.get((position[0], position[1]))
        return state is not None and position[2] in state.pending

    def settle(self, position: Position) -> None:
        state = self._partitions.get((position[0], position[1]))
        if state is not None:
            state.pending.discard(position[2])

    def committable(self, partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Next offset to commit, for each partition whose commit point moved."""
        wanted = self._partitions if partitions is None else set(partitions)
        moved: dict[Partition, int] = {}
        for key, state in self._partitions.items():
            point = state.commit_point()
            if key in wanted and point != state.committed and state.next_offset > 0:
                moved[key] = point
        return moved

    def commit_points(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """Where reading must resume for each partition so that no unsettled record is skipped."""
        points = {
            key: self._partitions[key].commit_point()
            for key in partitions
            if key in self._partitions
        }
        return {
            key: point for key, point in points.items() if self._partitions[key].next_offset > 0
        }

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        for key, offset in offsets.items():
            if key in self._partitions:
                self._partitions[key].committed = offset

    def forget(self, partitions: Iterable[Partition]) -> set[Position]:
        """Stop tracking partitions (revoked); returns their unsettled positions."""
        dropped: set[Position] = set()
        for key in partitions:
            state = self._partitions.pop(key, None)
            if state is not None:
                dropped.update((key[0], key[1], offset) for offset in state.pending)
        return dropped

    def pending_count(self) -> int:
        return sum(len(s.pending) for s in self._partitions.values())
