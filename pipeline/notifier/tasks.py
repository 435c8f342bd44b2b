"""A delivery on its way, and the three ways one attempt at it can end."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.errors import PipelineError
from pipeline.models import Alert

STAGE = "notifier"  # the notifier's `stage` label on metrics and dead letters


@dataclass(frozen=True)
class DeliveryTask:
    """One alert on its way to one destination.

    `payload` is the alert as it arrived (dead letters keep it byte for byte);
    `attempts` counts the failures that count against `max_attempts`;
    `queued_at` (Unix seconds) starts the retry budget; `not_before` is the
    earliest time of the next attempt.
    """

    alert: Alert
    payload: bytes
    destination: str
    queued_at: float
    attempts: int = 0
    not_before: float = 0.0
    last_error: str = ""

    @property
    def key(self) -> str:
        """Unique per alert and destination: the journal's and the logs' handle."""
        return f"{self.alert.alert_id}/{self.destination}"

    def deferred(self, not_before: float) -> DeliveryTask:
        return replace(self, not_before=not_before)

    def failed(self, not_before: float, attempts: int, reason: str) -> DeliveryTask:
        return replace(self, not_before=not_before, attempts=attempts, last_error=reason)


@dataclass(frozen=True)
class Delivered:
    task: DeliveryTask
    seconds: float


@dataclass(frozen=True)
class Later:
    """Not delivered yet: `task.not_before` says when to try again.

    `attempted` is False when nothing was sent (the destination is resting after
    failures, its rate limit is spent, or the lane ran out of time): the host may
    keep such a task in memory for a short while instead of handing it on.
    """

    task: DeliveryTask
    attempted: bool
    reason: str


@dataclass(frozen=True)
class GaveUp:
    """Dead-letter this delivery: the error says why (its `reason` is a metric label)."""

    task: DeliveryTask
    error: PipelineError


Outcome = Delivered | Later | GaveUp
