"""For the worker scripts the integration tests start: stop a runner once its input runs dry."""

from __future__ import annotations

import threading
import time


class IdleExit:
    """Stop once nothing arrived for `quiet` seconds, after a grace period to join the group."""

    def __init__(self, stop: threading.Event, quiet: float = 3.0, grace: float = 8.0) -> None:
        self.stop, self.quiet, self.grace = stop, quiet, grace
        self.started = time.monotonic()
        self.idle_since: float | None = None

    def __call__(self) -> None:
        now = time.monotonic()
        self.idle_since = self.idle_since or now
        if now - self.started > self.grace and now - self.idle_since > self.quiet:
            self.stop.set()

    def reset(self) -> None:
        self.idle_since = None
