"""When a feed is polled next: adaptive interval, hints, backoff, jitter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict

import pytest

from pipeline.config import Feed, PollerSettings
from pipeline.poller import schedule

SETTINGS = PollerSettings(
    default_interval_seconds=600, min_interval_seconds=60, max_interval_seconds=3600,
    max_backoff_seconds=7200, jitter_fraction=0.1,
)  # fmt: skip
NOW = 1_700_000_000.0
FEED = Feed(url="https://a.example/feed")


class Poll(TypedDict, total=False):
    """What one poll saw, as the parametrized cases below vary it."""

    current: float | None
    published: Sequence[float]
    new: int
    listed: int
    first_poll: bool


def adapt(
    feed: Feed = FEED,
    *,
    current: float | None = 600.0,
    published: Sequence[float] = (),
    new: int = 0,
    listed: int = 10,
    first_poll: bool = False,
) -> float:
    return schedule.adapt_interval(
        feed, SETTINGS, current=current, published=published, new=new, listed=listed,
        first_poll=first_poll, now=NOW,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"new": 0}, 900.0),  # nothing new: slow down
        ({"new": 2}, 450.0),  # something new: speed up
        ({"first_poll": True, "new": 10}, 600.0),
        ({"current": 3000.0, "new": 0}, 3600.0),  # bounded above
        ({"current": 70.0, "new": 1}, 60.0),  # bounded below
        ({"current": None, "new": 0}, 900.0),  # no history: from the default
        ({"new": 10, "listed": 10}, 300.0),  # all new: we may be missing stories
        # dated entries: 12 stories over the last 2 hours -> one every 10 minutes
        ({"published": tuple(NOW - 600 * i for i in range(1, 13)), "new": 1}, 600.0),
        ({"published": (NOW - 30 * 86400, NOW - 40 * 86400)}, 900.0),  # old dates ignored
    ],
)
def test_adaptive_interval(kw: Poll, expected: float) -> None:
    assert adapt(**kw) == pytest.approx(expected)


def test_a_fixed_interval_is_kept() -> None:
    assert adapt(Feed(url="https://a.example/feed", interval="15m"), new=0) == 900.0


@pytest.mark.parametrize(
    ("headers", "fresh"),
    [
        ({"cache-control": "public, max-age=1200"}, 1200.0),
        ({"cache-control": "max-age=1200", "age": "200"}, 1000.0),
        ({"cache-control": "no-cache, max-age=1200"}, None),
        ({"expires": "Tue, 14 Nov 2023 22:43:20 GMT", "date": "Tue, 14 Nov 2023 22:13:20 GMT"}, 1800.0),
        ({"expires": "0"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_freshness(headers: dict[str, str], fresh: float | None) -> None:
    assert schedule.freshness_seconds(headers, datetime.fromtimestamp(NOW, UTC)) == fresh


@pytest.mark.parametrize(
    ("interval", "ttl", "fresh", "delay"),
    [
        (600.0, None, None, 600.0),
        (600.0, 1800.0, None, 1800.0),  # <ttl> lengthens
        (600.0, None, 1200.0, 1200.0),  # Cache-Control lengthens
        (600.0, 86400.0, None, 3600.0),  # ...but never past the maximum
        (600.0, 60.0, 30.0, 600.0),  # and never shortens
    ],
)
def test_success_delay(
    interval: float, ttl: float | None, fresh: float | None, delay: float
) -> None:
    assert schedule.success_delay(interval, SETTINGS, ttl=ttl, fresh_for=fresh) == delay


@pytest.mark.parametrize(
    ("errors", "retry_after", "delay"),
    [
        (1, None, 600.0),
        (2, None, 1200.0),
        (3, None, 2400.0),
        (10, None, 7200.0),  # capped
        (1, 3000.0, 3000.0),  # Retry-After wins when longer
        (3, 30.0, 2400.0),
        (1, 99999.0, 7200.0),  # an absurd Retry-After is capped too
        (500, None, 7200.0),
    ],
)
def test_error_backoff(errors: int, retry_after: float | None, delay: float) -> None:
    assert schedule.error_delay(errors, 600.0, SETTINGS, retry_after=retry_after) == delay


def test_jitter_stays_within_the_fraction() -> None:
    assert schedule.jittered(1000.0, 0.1, 0.0) == pytest.approx(900.0)
    assert schedule.jittered(1000.0, 0.1, 0.5) == pytest.approx(1000.0)
    assert schedule.jittered(1000.0, 0.1, 0.999999) == pytest.approx(1100.0, abs=0.01)
