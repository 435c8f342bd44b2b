"""When to poll a feed next: adaptive interval, publisher hints, backoff, jitter.

Pure functions of numbers and headers. The interval follows how often the feed
publishes (from its entries' dates, else from whether the last poll found
anything new), always within the configured bounds; `<ttl>`, Cache-Control and
Expires can only lengthen it (up to the maximum); errors back off
exponentially, never sooner than a Retry-After.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pipeline.config import Feed, PollerSettings

RATE_WINDOW_SECONDS = 7 * 86400
GROW, SHRINK = 1.5, 0.75
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def clamp(value: float, settings: PollerSettings) -> float:
    return min(max(value, settings.min_interval_seconds), settings.max_interval_seconds)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def freshness_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long the response says it stays fresh (max-age minus Age, else Expires minus Date)."""
    cache_control = headers.get("cache-control", "").lower()
    if "no-store" in cache_control or "no-cache" in cache_control:
        return None
    match = _MAX_AGE.search(cache_control)
    if match:
        age = headers.get("age", "0").strip()
        return max(0.0, float(match.group(1)) - (float(age) if age.isdigit() else 0.0))
    expires = _http_date(headers.get("expires"))
    if expires is None:
        return None
    date = _http_date(headers.get("date")) or now
    return max(0.0, (expires - date).total_seconds())


def publishing_gap(published: Sequence[float], now: float) -> float | None:
    """Average seconds between stories over the last week, from the entries' dates."""
    recent = [t for t in published if now - RATE_WINDOW_SECONDS <= t <= now]
    if len(recent) < 2:
        return None
    return max(now - min(recent), 1.0) / len(recent)


def adapt_interval(
    feed: Feed,
    settings: PollerSettings,
    *,
    current: float | None,
    published: Sequence[float],
    new: int,
    listed: int,
    first_poll: bool,
    now: float,
) -> float:
    """The feed's next regular interval; a fixed `interval` in feeds.yaml is kept as is."""
    if feed.interval is not None:
        return float(feed.interval)
    interval = publishing_gap(published, now)
    if interval is None:
        base = current or settings.default_interval_seconds
        interval = base * (SHRINK if new else GROW) if not first_poll else base
    if new and new >= listed and not first_poll:
        interval = min(interval, (current or interval) / 2)  # all new: we may be missing some
    return clamp(interval, settings)


def success_delay(
    interval: float, settings: PollerSettings, *, ttl: float | None, fresh_for: float | None
) -> float:
    """The regular interval, lengthened (within bounds) by the publisher's hints."""
    hinted = max(interval, ttl or 0.0, fresh_for or 0.0)
    return interval if hinted == interval else clamp(hinted, settings)


def error_delay(
    errors: int, interval: float, settings: PollerSettings, *, retry_after: float | None
) -> float:
    """Exponential backoff from the regular interval; at least Retry-After; at most max_backoff."""
    base = max(settings.min_interval_seconds, interval)
    delay = base * 2.0 ** max(0, min(errors - 1, 30))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.max_backoff_seconds)


def jittered(delay: float, fraction: float, rand: float) -> float:
    """Spread polls: `rand` in [0, 1) moves the delay by up to +-fraction."""
    return delay * (1.0 + fraction * (2.0 * rand - 1.0))
