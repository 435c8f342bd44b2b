from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from pipeline.config import NotifierSettings
from pipeline.notifier.retry import DestinationHealth, RetryPolicy, parse_retry_after

POLICY = RetryPolicy(initial_seconds=1.0, max_seconds=60.0, max_attempts=5, budget_seconds=3600)


@pytest.mark.parametrize(
    ("failures", "ceiling"), [(1, 1.0), (2, 2.0), (4, 8.0), (7, 60.0), (500, 60.0)]
)
def test_full_jitter_stays_between_zero_and_the_capped_step(failures: int, ceiling: float) -> None:
    rng = random.Random(7)
    delays = [POLICY.delay(failures, None, rng) for _ in range(2000)]
    assert min(delays) >= 0.0
    assert max(delays) <= ceiling
    assert max(delays) > 0.9 * ceiling  # the whole range is used, not a fixed step
    assert min(delays) < 0.1 * ceiling


@pytest.mark.parametrize(
    ("retry_after", "floor"),
    [(30.0, 30.0), (0.0, 0.0), (86_400.0, 60.0)],  # honoured, but not beyond the cap
)
def test_retry_after_is_a_floor_up_to_the_cap(retry_after: float, floor: float) -> None:
    rng = random.Random(1)
    delays = [POLICY.delay(1, retry_after, rng) for _ in range(200)]
    assert min(delays) >= floor
    assert max(delays) <= max(floor, 1.0)


def test_budget_and_attempts() -> None:
    assert not POLICY.out_of_attempts(4)
    assert POLICY.out_of_attempts(5)
    assert not POLICY.past_budget(queued_at=100.0, when=100.0 + 3599)
    assert POLICY.past_budget(queued_at=100.0, when=100.0 + 3600)


def test_policy_from_settings() -> None:
    settings = NotifierSettings(max_attempts=3, backoff_initial_seconds=0.5, backoff_max_seconds=9)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(0.5, 9.0, 3, 24 * 3600)


NOW = datetime(2024, 5, 2, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("-5", None),
        ("soon", None),
        (format_datetime(datetime(2024, 5, 2, 12, 1, 30, tzinfo=UTC), usegmt=True), 90.0),
        ("Thu, 02 May 2024 11:00:00 GMT", 0.0),  # in the past: now
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_destination_health_rests_after_failures_and_recovers() -> None:
    health = DestinationHealth()
    rng = random.Random(3)
    assert not health.failing and not health.is_resting(0.0)
    health.record_failure(100.0, 30.0, POLICY, rng)
    assert health.failing
    assert health.is_resting(129.0)
    assert not health.is_resting(100.0 + 60.0)
    health.record_success()
    assert not health.failing and not health.is_resting(101.0)
