"""When to try a delivery again, and when to stop trying.

Exponential backoff with full jitter (a random wait between 0 and the capped
exponential step, so replicas recovering together do not stampede), raised to a
server's `Retry-After` when it names one (up to `backoff_max_seconds`: a
misbehaving server cannot park an alert for days). An alert gives up after
`max_attempts` counted failures or once `retry_budget_seconds` have passed since
the notifier first took it, whichever comes first.

A destination also has a health record: after a failure it is left alone for a
backoff of its own, so one outage costs one attempt per backoff step instead of
one per alert. An attempt made while the destination is already failing (a
probe) does not count against the alert: a chat that is down for an hour must
not exhaust the attempts of the one alert that happened to be waiting for it.
The retry budget bounds those waits instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pipeline.config import NotifierSettings

MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float
    max_seconds: float
    max_attempts: int
    budget_seconds: float

    @classmethod
    def from_settings(cls, settings: NotifierSettings) -> RetryPolicy:
        return cls(
            initial_seconds=settings.backoff_initial_seconds,
            max_seconds=settings.backoff_max_seconds,
            max_attempts=settings.max_attempts,
            budget_seconds=settings.retry_budget_seconds,
        )

    def delay(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 = the first)."""
        step = self.initial_seconds * 2.0 ** min(max(failures - 1, 0), MAX_EXPONENT)
        wait = rng.uniform(0.0, min(self.max_seconds, step))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_seconds))
        return wait

    def out_of_attempts(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def past_budget(self, queued_at: float, when: float) -> bool:
        """True once `when` lies beyond the retry budget of an alert taken at `queued_at`."""
        return when - queued_at >= self.budget_seconds


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.fromtimestamp(now, UTC)).total_seconds(), 0.0)


class DestinationHealth:
    """Consecutive failures of one destination and until when to leave it alone.

    Not locked: the dispatcher holds its lock around every call.
    """

    def __init__(self) -> None:
        self.failures = 0
        self.down_until = 0.0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def is_resting(self, now: float) -> bool:
        return now < self.down_until

    def record_failure(
        self, now: float, retry_after: float | None, policy: RetryPolicy, rng: random.Random
    ) -> None:
        self.failures += 1
        self.down_until = max(self.down_until, now + policy.delay(self.failures, retry_after, rng))

    def record_success(self) -> None:
        self.failures = 0
        self.down_until = 0.0
