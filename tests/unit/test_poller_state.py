"""Feed state: serialisation, the seen set, the sqlite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import DecodeError
from pipeline.poller.state import (
    MAX_SEEN_PER_FEED,
    FeedState,
    SeenStories,
    SqliteStateStore,
    remember,
    seen_share,
)


def test_state_round_trips() -> None:
    state = FeedState(
        name="bbc", url="https://x.example/f", etag='"e"', last_modified="Mon", interval=300.0,
        next_poll=10.0, last_success=5.0, last_error="timeout: slow", consecutive_errors=2,
        items_seen=7, stories_published=3, fetches=9, fetches_304=4, seen=("a", "b"),
    )  # fmt: skip
    assert FeedState.from_bytes(state.to_bytes()) == state


def test_a_state_saved_before_the_fetch_counts_loads_with_none_counted() -> None:
    saved = b'{"name":"bbc","url":"https://x.example/f","items_seen":7,"version":1}'
    state = FeedState.from_bytes(saved)
    assert (state.items_seen, state.fetches, state.fetches_304) == (7, 0, 0)


@pytest.mark.parametrize(
    "payload", [b"{", b"[]", b'{"version": 99, "name": "x"}', b'{"version": 1}']
)
def test_bad_state_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        FeedState.from_bytes(payload)


def test_validators_only_for_the_same_url() -> None:
    state = FeedState(name="f", url="https://a.example/f", etag='"1"')
    assert state.validators_for("https://a.example/f").etag == '"1"'
    assert state.validators_for("https://a.example/moved").etag is None


def test_remember_keeps_the_listing_then_recent_history() -> None:
    assert remember(["c", "d", "e"], ["a", "b", "c"], keep=4) == ("a", "b", "c", "d")
    assert remember([], ["a", "b", "c"], keep=1) == ("a", "b", "c")  # never less than listed
    assert len(remember([], [str(i) for i in range(9000)], keep=10)) == MAX_SEEN_PER_FEED


def test_seen_share() -> None:
    assert seen_share(200_000, 100) == 2000
    assert seen_share(200_000, 100_000) == 100
    assert seen_share(200_000, 1) == MAX_SEEN_PER_FEED


def test_seen_claims_and_releases() -> None:
    seen = SeenStories(capacity=3)
    assert seen.claim(["a", "b"]) == ["a", "b"]
    assert seen.claim(["b", "c"]) == ["c"]
    seen.release(["c"])
    assert seen.claim(["c"]) == ["c"]
    seen.add(["d"])  # over capacity: the oldest goes
    assert "a" not in seen and len(seen) == 3


def test_sqlite_store_survives_reopening(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state")
    store.save([FeedState(name="a", seen=("1",)), FeedState(name="b")])
    store.save([FeedState(name="a", seen=("2", "1"))])
    store.close()
    reopened = SqliteStateStore(tmp_path / "state")
    states = reopened.load()
    assert set(states) == {"a", "b"}
    assert states["a"].seen == ("2", "1")
    assert reopened.refresh() == []
    reopened.close()
