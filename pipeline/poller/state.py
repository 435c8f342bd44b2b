"""Poller state: per-feed state (validators, schedule, health, recent story ids) and stores.

Each feed's state carries the ids of the stories it listed recently, so a
store is nothing but a map from feed name to bytes: a sqlite file in
one-process mode, a compacted topic keyed by feed name in Kafka mode. The
cross-feed "seen" set is the union of those lists (bounded by
`poller.seen_capacity`), rebuilt at start from the store; no other volume is
needed, and a replica that takes over a feed takes over its memory with it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import DecodeError
from pipeline.http import Validators
from pipeline.storage import connect, immediate

STATE_VERSION = 1
MAX_SEEN_PER_FEED = 4000
"""Keeps one feed's state record well under Kafka's 1 MB message limit (~37 bytes per id)."""


@dataclass(frozen=True)
class FeedState:
    name: str
    url: str = ""
    etag: str | None = None
    last_modified: str | None = None
    interval: float | None = None
    next_poll: float = 0.0
    last_poll: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_errors: int = 0
    items_seen: int = 0
    stories_published: int = 0
    fetches: int = 0
    """Successful fetches (200 or 304) since the feed was first polled."""
    fetches_304: int = 0
    """Of those, how many the server answered 304 Not Modified: the share tells whether
    the feed honours conditional GET (the console's feeds page shows it)."""
    body_hash: str | None = None
    """Digest of the last document read: a server without validators that sends the same
    bytes again costs no parse."""
    seen: tuple[str, ...] = field(default=(), repr=False)
    """Story ids this feed listed, most recent first."""

    def validators_for(self, url: str) -> Validators:
        """Validators apply to the URL they came from; a changed feed URL starts afresh."""
        if url != self.url:
            return Validators()
        return Validators(self.etag, self.last_modified)

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data["seen"] = list(self.seen)
        data["version"] = STATE_VERSION
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, payload: bytes) -> FeedState:
        try:
            data: dict[str, Any] = json.loads(payload)
            if data.pop("version", None) != STATE_VERSION:
                raise DecodeError("unknown poller state version")
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            name, seen = str(known.pop("name")), tuple(known.pop("seen", ()))
            return cls(name=name, seen=seen, **known)
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"bad poller state: {exc}") from exc


def remember(previous: Sequence[str], listed: Sequence[str], keep: int) -> tuple[str, ...]:
    """The feed's recent ids: all it lists now, then older ones, up to `keep` (or the listing)."""
    merged = dict.fromkeys(listed)
    for story_id in previous:
        if len(merged) >= max(keep, len(listed)):
            break
        merged.setdefault(story_id, None)
    return tuple(merged)[:MAX_SEEN_PER_FEED]


def seen_share(capacity: int, feeds: int) -> int:
    """How many ids each feed keeps so that all of them together stay within `capacity`."""
    return max(100, min(MAX_SEEN_PER_FEED, capacity // max(1, feeds)))


class SeenStories:
    """The ids already published (or being published), oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Iterable[str]) -> None:
        for story_id in ids:
            self._ids[story_id] = None
            self._ids.move_to_end(story_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def claim(self, ids: Sequence[str]) -> list[str]:
        """Mark `ids` seen and return those that were not: the stories to publish."""
        new = [story_id for story_id in ids if story_id not in self._ids]
        self.add(ids)
        return new

    def release(self, ids: Iterable[str]) -> None:
        """Un-claim ids whose publication failed, so the next poll tries them again."""
        for story_id in ids:
            self._ids.pop(story_id, None)


class StateStore(Protocol):
    """Where feed states live between runs; `save` returns once they are durable."""

    def load(self) -> dict[str, FeedState]: ...

    def refresh(self) -> list[FeedState]:
        """States written by others since the last load/refresh (other replicas)."""
        ...

    def save(self, states: Sequence[FeedState]) -> None: ...

    def close(self) -> None: ...


class MemoryStateStore:
    """For tests and throwaway runs."""

    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}

    def load(self) -> dict[str, FeedState]:
        return {name: FeedState.from_bytes(raw) for name, raw in self.states.items()}

    def refresh(self) -> list[FeedState]:
        return []

    def save(self, states: Sequence[FeedState]) -> None:
        self.states.update((s.name, s.to_bytes()) for s in states)

    def close(self) -> None:
        """Nothing to release."""


class SqliteStateStore:
    """One file under the state dir; each save is one transaction (survives kill -9)."""

    FILENAME = "poller.sqlite3"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / self.FILENAME
        self._lock = threading.Lock()
        self._db = connect(
            self.path,
            "CREATE TABLE IF NOT EXISTS feed_state (name TEXT PRIMARY KEY, state BLOB NOT NULL)",
        )

    def load(self) -> dict[str, FeedState]:
        with self._lock:
            rows = self._db.execute("SELECT state FROM feed_state").fetchall()
        states = (FeedState.from_bytes(row[0]) for row in rows)
        return {state.name: state for state in states}

    def refresh(self) -> list[FeedState]:
        return []

    def save(self, states: Sequence[FeedState]) -> None:
        rows = [(s.name, s.to_bytes()) for s in states]
        with self._lock, immediate(self._db):
            self._db.executemany("INSERT OR REPLACE INTO feed_state VALUES (?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
