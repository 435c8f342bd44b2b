from __future__ import annotations

import pytest

from pipeline.notifier.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_interval() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=2, clock=clock)
    assert [bucket.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(1.0)
    clock.now += 0.25
    assert bucket.try_acquire() == pytest.approx(0.75)
    clock.now += 0.75
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(1.0)


def test_idle_time_saves_up_only_to_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        bucket.try_acquire()
    clock.now += 3600
    taken = [bucket.try_acquire() for _ in range(4)]
    assert taken[:3] == [0.0, 0.0, 0.0]
    assert taken[3] == pytest.approx(0.5)


def test_clock_going_backwards_adds_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    bucket.try_acquire()
    clock.now -= 10
    assert bucket.try_acquire() == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bad_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, Clock())
