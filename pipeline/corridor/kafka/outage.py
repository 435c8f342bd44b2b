"""Riding out a broker that is away: every Kafka call of a worker goes through a
`BrokerWatch`, which tells a transient error (connection refused, no coordinator,
timeouts) from a real one, waits with backoff, counts the outage and gives up only
after `kafka.unavailable_exit_seconds`.

A broker restart, a rolling upgrade or a network blip is routine in production: a
worker that exits on the first refused connection turns a 20-second bounce into a
pipeline that has stopped for good (or, with a restart policy, into a crash loop that
throws away what it held). While it waits the worker keeps what it holds (records in
hand, its state, its place in the group), reports not-ready on `/readyz` (from the
`newsmon_kafka_up` gauge), and resumes where its committed offsets say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import BrokerNotAvailableError, KafkaError

from pipeline.config import KafkaSettings
from pipeline.errors import PipelineError
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0


class BrokerUnavailable(PipelineError):
    """The broker stayed unreachable longer than `kafka.unavailable_exit_seconds`."""

    def __init__(self, message: str, *, reason: str = "broker_unavailable") -> None:
        super().__init__(message, reason=reason)


def is_transient(exc: BaseException) -> bool:
    """A Kafka error that waiting can cure: no connection, no leader or coordinator yet,
    a timeout. An authorisation or configuration error is not, and is raised at once."""
    if not isinstance(exc, KafkaError):
        return False
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, BrokerNotAvailableError)


class BrokerWatch:
    """One client's view of the broker: up or down since when, with the deadline to exit.

    `client` names the metric series (`newsmon_kafka_up{client}`), e.g. `extractor`,
    `notifier-retry`, `poller`. Thread-safe: the poller calls it from several threads.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        client: str,
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.exit_after = settings.unavailable_exit_seconds
        self.metrics = metrics
        self.stop = stop if stop is not None else threading.Event()
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._reached = False
        """Whether the broker ever answered: waiting for it at start is not an outage."""
        self._counted_at = time.monotonic()
        self._backoff = FIRST_BACKOFF_SECONDS
        if metrics is not None:
            metrics.kafka_up.labels(client).set(0)  # not ready until the first answer
            metrics.kafka_unavailable_seconds.labels(client)
            metrics.kafka_outages.labels(client)

    @property
    def down_for(self) -> float:
        """Seconds since the broker last answered (0 while it answers)."""
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def answered(self) -> None:
        """The broker answered: the outage (if any) is over."""
        with self._lock:
            self._count_seconds()
            was_down, self._down_since = self._down_since, None
            was_reached, self._reached = self._reached, True
            self._backoff = FIRST_BACKOFF_SECONDS
        if self.metrics is not None:
            self.metrics.kafka_up.labels(self.client).set(1)
        if was_down is not None and was_reached:
            seconds = round(time.monotonic() - was_down, 1)
            log.warning(
                "broker reachable again", extra={"stage": self.client, "seconds_down": seconds}
            )

    def failed(self, exc: BaseException | str) -> None:
        """A call could not reach the broker. Raises `BrokerUnavailable` once it has been
        away longer than `unavailable_exit_seconds`; raises `exc` at once if it is not
        a transient error."""
        if isinstance(exc, BaseException) and not is_transient(exc):
            raise exc
        with self._lock:
            self._count_seconds()
            started = self._down_since is None
            if started:
                self._down_since = time.monotonic()
        if self.metrics is not None:
            self.metrics.kafka_up.labels(self.client).set(0)
        if started and not self._reached:  # at start: not an outage (yet)
            log.info("waiting for the broker", extra={"stage": self.client,
                     "reason": _describe(exc), "exit_after_seconds": self.exit_after})  # fmt: skip
        elif started:
            if self.metrics is not None:
                self.metrics.kafka_outages.labels(self.client).inc()
            log.warning(
                "broker unreachable, waiting for it",
                extra={"stage": self.client, "reason": _describe(exc),
                       "exit_after_seconds": self.exit_after},
            )  # fmt: skip
        self._give_up_if_overdue(exc)

    def wait(self) -> bool:
        """Sleep the backoff (doubling up to 5 s); True if asked to stop meanwhile."""
        with self._lock:
            delay = self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
        return self.stop.wait(delay)

    def call(self, action: Callable[[], T], what: str) -> T:
        """`action()`, retried with backoff while the broker is away; `BrokerUnavailable`
        past the deadline or when asked to stop while waiting."""
        while True:
            try:
                result = action()
            except KafkaError as exc:
                self.failed(exc)
                if self.wait():
                    raise BrokerUnavailable(
                        f"stopped while waiting for the broker ({what})", reason="stopped"
                    ) from exc
                continue
            self.answered()
            return result

    def check(self) -> None:
        """`BrokerUnavailable` if the broker has been away longer than the deadline; for a
        loop that learns of an outage from calls made elsewhere (another thread)."""
        if self._down_since is not None:
            with self._lock:
                self._count_seconds()
            self._give_up_if_overdue("no answer")

    def _count_seconds(self) -> None:
        """Add the time since the last count to the outage counter, if it was down."""
        now = time.monotonic()
        if self._down_since is not None and self.metrics is not None:
            seconds = now - max(self._counted_at, self._down_since)
            self.metrics.kafka_unavailable_seconds.labels(self.client).inc(max(seconds, 0.0))
        self._counted_at = now

    def _give_up_if_overdue(self, exc: BaseException | str) -> None:
        down = self.down_for
        if down <= self.exit_after:
            return
        log.error(
            "broker unreachable for longer than kafka.unavailable_exit_seconds, exiting",
            extra={"stage": self.client, "reason": _describe(exc),
                   "seconds_down": round(down, 1), "exit_after_seconds": self.exit_after},
        )  # fmt: skip
        raise BrokerUnavailable(
            f"broker unreachable for {down:.0f} s (kafka.unavailable_exit_seconds = "
            f"{self.exit_after:g}): {_describe(exc)}"
        )


def _describe(exc: BaseException | str) -> str:
    return exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
