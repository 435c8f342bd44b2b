"""One delivery attempt at a time, decided the same way in both modes.

The `Dispatcher` owns, per destination, the adapter, the token bucket and the
health record. `attempt` either sends (and reports the result) or explains why
not now: the destination is resting after failures, or its rate limit will not
give a token before `wait_until`. With a `DeliveredLedger` it also sends nothing
the destination already has: an alert read again after a crash is settled as
`already_delivered`, and two attempts at the same alert and destination never
run at once (the alerts loop and the retry loop of one worker could hold both).
Nothing here knows about Kafka: the Kafka worker and the one-process mode keep
the waiting deliveries their own way.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from pipeline.config import Destination, NotifierSettings
from pipeline.errors import DeliveryError, DeliveryRetryable, PipelineError
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.notifier.adapters import Adapter, build_adapters, close_adapters
from pipeline.notifier.delivered import DeliveredLedger
from pipeline.notifier.ratelimit import TokenBucket
from pipeline.notifier.retry import DestinationHealth, RetryPolicy
from pipeline.notifier.tasks import STAGE, Delivered, DeliveryTask, GaveUp, Later, Outcome

log = logging.getLogger(__name__)

# A retried alert goes behind those that waited for the destination to recover,
# so the next probe is another alert: a poison alert cannot hold the line.
BEHIND_SECONDS = 0.001
# An attempt at a delivery that another thread is making comes back this much later
# (by then the ledger knows whether the other one got through).
CLAIMED_RETRY_SECONDS = 1.0

Sleep = Callable[[float], object]


@dataclass
class _Lane:
    adapter: Adapter
    bucket: TokenBucket
    health: DestinationHealth


class Dispatcher:
    """Delivery decisions for a set of destinations; thread-safe.

    `clock` is Unix seconds (retry times travel between processes); `sleep`
    waits for a rate-limit token and may return True to say "stop waiting"
    (pass `stop_event.wait`). `adapters` replaces the real ones in tests;
    `ledger` (None: every attempt sends) remembers what each destination has;
    it is closed with the dispatcher.
    """

    def __init__(
        self,
        destinations: Sequence[Destination],
        settings: NotifierSettings,
        metrics: Metrics,
        *,
        user_agent: str = "newsmon",
        clock: Callable[[], float] = time.time,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
        adapters: Mapping[str, Adapter] | None = None,
        ledger: DeliveredLedger | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self._claimed: set[str] = set()
        self.policy = RetryPolicy.from_settings(settings)
        self.metrics = metrics
        self.clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        if adapters is None:
            adapters, self._client = build_adapters(
                destinations, settings.timeout_seconds, user_agent, clock
            )
        self._adapters = dict(adapters)
        self._lanes = {d.id: self._lane(d, adapters[d.id]) for d in destinations}
        metrics.declare_destinations(self._lanes)

    def _lane(self, dest: Destination, adapter: Adapter) -> _Lane:
        bucket = TokenBucket(dest.rate_per_second, dest.burst, self.clock)
        return _Lane(adapter, bucket, DestinationHealth())

    @property
    def destination_ids(self) -> tuple[str, ...]:
        return tuple(self._lanes)

    def tasks_for(self, alert: Alert, payload: bytes | None = None) -> list[DeliveryTask]:
        """One task per destination the alert names (all of them when it names none)."""
        targets = list(dict.fromkeys(alert.notify)) or list(self._lanes)
        now = self.clock()
        body = payload if payload is not None else alert.to_bytes()
        return [DeliveryTask(alert, body, dest, queued_at=now, not_before=now) for dest in targets]

    def attempt(self, task: DeliveryTask, wait_until: float) -> Outcome:
        """Try `task` once, or say when to come back; never raises for a delivery problem."""
        lane = self._lanes.get(task.destination)
        if lane is None:
            error = DeliveryError("no such destination configured", reason="unknown_destination")
            return self._give_up(task, error)
        if not self._claim(task):
            later = task.deferred(self.clock() + CLAIMED_RETRY_SECONDS)
            return Later(later, attempted=False, reason="in_progress")
        try:
            if self._already_delivered(task):
                return Delivered(task, 0.0)
            return self._attempt_claimed(lane, task, wait_until)
        finally:
            with self._lock:
                self._claimed.discard(task.key)

    def _claim(self, task: DeliveryTask) -> bool:
        with self._lock:
            if task.key in self._claimed:
                return False
            self._claimed.add(task.key)
            return True

    def _already_delivered(self, task: DeliveryTask) -> bool:
        """Per the ledger; one that cannot be read says no (sending twice beats losing)."""
        if self.ledger is None:
            return False
        try:
            if not self.ledger.has(task.alert.alert_id, task.destination):
                return False
        except PipelineError as exc:
            self._ledger_failed(task, exc)
            return False
        self.metrics.deliveries.labels(task.destination, "already_delivered").inc()
        log.info(
            "alert already delivered, not sent again destination=%s alert_id=%s",
            task.destination, task.alert.alert_id,
        )  # fmt: skip
        return True

    def _attempt_claimed(self, lane: _Lane, task: DeliveryTask, wait_until: float) -> Outcome:
        now = self.clock()
        if self.policy.past_budget(task.queued_at, now):
            return self._give_up(task, _budget_error(task))
        with self._lock:
            resting_until = lane.health.down_until if lane.health.is_resting(now) else None
        if resting_until is not None:
            return Later(task.deferred(resting_until), attempted=False, reason="destination_down")
        token_at = self._take_token(lane, wait_until)
        if token_at is not None:
            return Later(task.deferred(token_at), attempted=False, reason="rate_limited")
        return self._send(lane, task)

    def run_lane(self, tasks: Sequence[DeliveryTask], wait_until: float) -> list[Outcome]:
        """Attempt tasks of one destination in order until `wait_until`; the rest come back
        as `Later(attempted=False)` with their times unchanged."""
        outcomes: list[Outcome] = []
        for task in tasks:
            if self.clock() >= wait_until:
                outcomes.append(Later(task, attempted=False, reason="lane_busy"))
            else:
                outcomes.append(self.attempt(task, wait_until))
        return outcomes

    def deliver(
        self, alert: Alert, *, until: float, payload: bytes | None = None
    ) -> dict[str, Outcome]:
        """Deliver one alert with in-process retries until every destination is settled or
        `until` comes; a `Later` in the result is a delivery the caller must keep."""
        pending = self.tasks_for(alert, payload)
        settled: dict[str, Outcome] = {}
        with ThreadPoolExecutor(max_workers=max(len(pending), 1)) as pool:
            while pending:
                now = self.clock()
                due = [t for t in pending if t.not_before <= now]
                pending = [t for t in pending if t.not_before > now]
                wait_until = min(until, now + self.settings.handoff_after_seconds)
                for outcome in run_lanes(self, due, wait_until, pool):
                    settled[outcome.task.destination] = outcome
                    if isinstance(outcome, Later):
                        pending.append(outcome.task)
                if not pending or not self._nap_until(min(t.not_before for t in pending), until):
                    break
        return settled

    def _nap_until(self, wake: float, until: float) -> bool:
        """Sleep until `wake`; False when that is past `until` or the sleep was cut short."""
        if wake >= until:
            return False
        return not self._sleep(max(wake - self.clock(), 0.0))

    def _take_token(self, lane: _Lane, wait_until: float) -> float | None:
        """None once a token is taken; else the time one will be there (past `wait_until`)."""
        while True:
            wait = lane.bucket.try_acquire()
            if wait <= 0.0:
                return None
            ready = self.clock() + wait
            if ready > wait_until or self._sleep(wait):
                return ready

    def _send(self, lane: _Lane, task: DeliveryTask) -> Outcome:
        started = time.monotonic()
        try:
            lane.adapter.deliver(task.alert)
        except DeliveryRetryable as exc:
            return self._failed(lane, task, exc)
        except DeliveryError as exc:
            return self._give_up(task, exc)
        except Exception as exc:  # a bug in an adapter must not lose the alert
            log.exception(
                "adapter crashed destination=%s alert_id=%s", task.destination, task.alert.alert_id
            )
            return self._failed(
                lane, task, DeliveryRetryable(f"{type(exc).__name__}: {exc}", reason="crash")
            )
        finally:
            self.metrics.delivery_seconds.labels(task.destination).observe(
                time.monotonic() - started
            )
        return self._delivered(lane, task, time.monotonic() - started)

    def _delivered(self, lane: _Lane, task: DeliveryTask, seconds: float) -> Delivered:
        with self._lock:
            lane.health.record_success()
        self._remember(task)
        self.metrics.deliveries.labels(task.destination, "delivered").inc()
        age = self.clock() - task.alert.first_seen.timestamp()
        self.metrics.end_to_end_seconds.observe(max(age, 0.0))
        log.info(
            "alert delivered destination=%s alert_id=%s rule=%s story_id=%s seconds=%.3f",
            task.destination, task.alert.alert_id, task.alert.rule_id, task.alert.story.id, seconds,
        )  # fmt: skip
        return Delivered(task, seconds)

    def _remember(self, task: DeliveryTask) -> None:
        """Into the ledger; a disk that refuses costs only the protection against repeats."""
        if self.ledger is None:
            return
        try:
            self.ledger.record(task.alert.alert_id, task.destination, self.clock())
        except PipelineError as exc:
            self._ledger_failed(task, exc)

    def _ledger_failed(self, task: DeliveryTask, error: PipelineError) -> None:
        self.metrics.stage_errors.labels(STAGE, error.reason).inc()
        log.error(
            "delivery ledger failed, a re-read alert could be sent again destination=%s "
            "alert_id=%s error=%s", task.destination, task.alert.alert_id, error,
        )  # fmt: skip

    def _failed(self, lane: _Lane, task: DeliveryTask, error: DeliveryRetryable) -> Outcome:
        now = self.clock()
        with self._lock:
            probe = lane.health.failing
            lane.health.record_failure(now, error.retry_after, self.policy, self._rng)
            attempts = task.attempts + (0 if probe else 1)
            own_wait = self.policy.delay(max(attempts, 1), error.retry_after, self._rng)
            retry_at = max(now + own_wait, lane.health.down_until + BEHIND_SECONDS)
        if self.policy.out_of_attempts(attempts):
            return self._give_up(task, _exhausted(error, attempts), attempts)
        if self.policy.past_budget(task.queued_at, retry_at):
            return self._give_up(task, _budget_error(task, error), attempts)
        self.metrics.deliveries.labels(task.destination, "retry").inc()
        self.metrics.delivery_retries.labels(task.destination).inc()
        log.warning(
            "delivery failed, will retry destination=%s alert_id=%s reason=%s attempts=%s "
            "retry_in=%.1f error=%s",
            task.destination, task.alert.alert_id, error.reason, attempts, retry_at - now, error,
        )  # fmt: skip
        return Later(
            task.failed(retry_at, attempts, error.reason), attempted=True, reason=error.reason
        )

    def _give_up(
        self, task: DeliveryTask, error: PipelineError, attempts: int | None = None
    ) -> GaveUp:
        self.metrics.deliveries.labels(task.destination, "dead_letter").inc()
        log.error(
            "delivery dead-lettered destination=%s alert_id=%s rule=%s reason=%s error=%s",
            task.destination, task.alert.alert_id, task.alert.rule_id, error.reason, error,
        )  # fmt: skip
        if attempts is not None and attempts != task.attempts:
            task = task.failed(task.not_before, attempts, error.reason)
        return GaveUp(task, error)

    def close(self) -> None:
        if self._client is not None:
            close_adapters(self._adapters, self._client)
        if self.ledger is not None:
            self.ledger.close()


def _exhausted(error: DeliveryRetryable, attempts: int) -> DeliveryError:
    return DeliveryError(f"gave up after {attempts} attempts: {error}", reason="max_attempts")


def _budget_error(task: DeliveryTask, error: PipelineError | None = None) -> DeliveryError:
    last = f"{error}" if error is not None else task.last_error or "never delivered"
    return DeliveryError(f"retry budget spent: {last}", reason="retry_budget")


def run_lanes(
    dispatcher: Dispatcher, tasks: Sequence[DeliveryTask], wait_until: float, pool: Executor
) -> list[Outcome]:
    """Run each destination's tasks on its own worker, so a slow one holds up no other;
    outcomes come back in the order of `tasks`."""
    order: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        order.setdefault(task.destination, []).append(index)
    futures = {
        dest: pool.submit(dispatcher.run_lane, [tasks[i] for i in indices], wait_until)
        for dest, indices in order.items()
    }
    outcomes: list[Outcome | None] = [None] * len(tasks)
    for dest, future in futures.items():
        for index, outcome in zip(order[dest], future.result(), strict=True):
            outcomes[index] = outcome
    return [o for o in outcomes if o is not None]
