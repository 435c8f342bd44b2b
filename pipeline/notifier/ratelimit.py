"""Token buckets: how fast a destination may be sent to (Slack takes about one a second)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; safe to share between threads."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a token: 0.0 when one was taken, else the seconds until one will be there."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(now - self._updated, 0.0)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now
