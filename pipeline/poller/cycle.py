"""What one poll cycle deals in: which feeds this replica owns, the result of one feed's
poll, and the report of a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.models import RawStory
from pipeline.poller.state import FeedState


class Ownership(Protocol):
    """Which feeds this replica polls; `watch` tells it which feeds are mid-poll."""

    def owns(self, feed_name: str) -> bool: ...

    def watch(self, busy: Callable[[], frozenset[str]]) -> None: ...

    def close(self) -> None: ...


class AllFeeds:
    """A single poller owns every feed."""

    def owns(self, feed_name: str) -> bool:
        return True

    def watch(self, busy: Callable[[], frozenset[str]]) -> None:
        """Nothing is ever handed over."""

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class PollResult:
    feed: str
    outcome: str
    """One of metrics.POLL_OUTCOMES: ok, not_modified, error, throttled."""
    state: FeedState
    stories: tuple[RawStory, ...] = ()
    listed: int = 0


@dataclass
class CycleReport:
    """What a run did, for `--once` output and tests."""

    polls: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    stories: int = 0
    """New stories published."""
    errors: dict[str, str] = field(default_factory=dict)
