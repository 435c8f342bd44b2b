"""Holding one rate, judging it, and searching for the highest rate that holds.

A probe releases `rate` stories a second for a warm-up and a window; the stories of
the window count. It passes when every counted story's alert arrived, the 95th
percentile of first-seen-to-delivered is under the limit, and the probe ran to its
end. It stops early once more than 5 % of the window's stories are certainly late
(delivered late, or still missing longer after their release than the limit plus two
polls): the percentile can no longer pass. After each probe the bench waits for the
pipeline to drain, so the next probe starts empty.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline_procs import POLL_SECONDS
from pipeline_site import Receiver, Releases

LIMIT_SECONDS = 2.0
PERCENTILE = 0.95
TICK_SECONDS = 0.25
# The search starts at the target (80 % of bare) and steps by a tenth of bare until the
# verdict changes; then it bisects between the highest pass and the lowest failure.
FIRST_PROBE = 0.8
STEP = 0.1
DISTURBED_CORES = 0.3
RETRIES = 2
QUIET_SAMPLE_SECONDS = 1.0


@dataclass(frozen=True)
class Probe:
    rate: float
    stories: int
    latencies: tuple[float, ...]
    stopped_early: bool
    cores: dict[str, float] = field(default_factory=dict)
    """CPU cores each component used during the window (the machine's total as 'machine')."""
    waited: float = 0.0
    """Seconds spent before the probe waiting for other work on the machine to settle."""
    extra: int = 0
    """Alerts received twice, or not for a story (a digest): never expected."""
    drained: bool = True
    """Every released story's alert arrived before the next probe (else it starts loaded)."""
    bare: float = math.nan
    """The bare calls' stories per second around this probe: the mean of the measurements
    just before and just after it (the host's speed drifts within a run)."""

    @property
    def ratio(self) -> float:
        return self.rate / self.bare

    @property
    def others(self) -> float:
        return other_work(self.cores)

    @property
    def disturbed(self) -> bool:
        """Failed while other work took a good share of the machine: not conclusive."""
        return not self.passed and self.others > DISTURBED_CORES

    @property
    def undelivered(self) -> int:
        return self.stories - len(self.latencies)

    @property
    def p95(self) -> float:
        """Nearest-rank percentile; an undelivered story counts as infinitely late."""
        ranked = sorted(self.latencies) + [math.inf] * self.undelivered
        if not ranked:
            return math.inf
        return ranked[math.ceil(PERCENTILE * len(ranked)) - 1]

    @property
    def p50(self) -> float:
        ranked = sorted(self.latencies) + [math.inf] * self.undelivered
        return ranked[math.ceil(0.5 * len(ranked)) - 1] if ranked else math.inf

    @property
    def passed(self) -> bool:
        return (
            not self.stopped_early
            and self.stories > 0
            and self.undelivered == 0
            and self.extra == 0
            and self.p95 < LIMIT_SECONDS
        )


@dataclass
class Pacer:
    """What a probe needs from the bench: the feed, the receiver, liveness and CPU readings."""

    releases: Releases
    receiver: Receiver
    check_alive: Callable[[], None]
    cpu: Callable[[], dict[str, float]]
    drain_seconds: float = 60.0
    quiet_budget: float = 60.0
    """Seconds a whole search may spend waiting for other work to settle before probes."""

    def probe(self, rate: float, warm: float, window: float) -> Probe:
        waited = self.wait_quiet()
        extra_before = self.receiver.extra()
        start = time.time() + 0.2
        planned = self.releases.plan(rate, warm + window, start)
        counted = [(n, t) for n, t in planned if t >= start + warm]
        cpu_before = self._cpu_at(start + warm)
        early = self._hold(counted, planned[-1][1])
        cpu_after = self.cpu()
        released = [(n, t) for n, t in planned if t <= time.time()]
        self.releases.cancel_after(time.time())
        drained = self._drain([n for n, _ in released])
        counted = [(n, t) for n, t in counted if t <= released[-1][1]]
        return Probe(
            rate, len(counted), self._latencies(counted), early, _cores(cpu_before, cpu_after),
            waited, self.receiver.extra() - extra_before, drained,
        )  # fmt: skip

    def wait_quiet(self) -> float:
        """Until other work takes at most DISTURBED_CORES, or the budget is spent."""
        waited = 0.0
        while True:
            before = self.cpu()
            time.sleep(QUIET_SAMPLE_SECONDS)
            if other_work(_cores(before, self.cpu())) <= DISTURBED_CORES:
                return waited
            if waited >= self.quiet_budget:
                return waited
            waited += QUIET_SAMPLE_SECONDS
            self.quiet_budget -= QUIET_SAMPLE_SECONDS

    def _cpu_at(self, moment: float) -> dict[str, float]:
        time.sleep(max(0.0, moment - time.time()))
        return self.cpu()

    def _hold(self, counted: Sequence[tuple[int, float]], end: float) -> bool:
        """Until the last release; True if the probe was certain to fail before that."""
        allowed = math.floor((1 - PERCENTILE) * len(counted))
        while time.time() < end:
            time.sleep(TICK_SECONDS)
            self.check_alive()
            if self._late(counted, time.time()) > allowed:
                return True
        return False

    def _late(self, counted: Sequence[tuple[int, float]], now: float) -> int:
        overdue = LIMIT_SECONDS + 2 * POLL_SECONDS
        late = 0
        for n, released in counted:
            arrival = self.receiver.get(n)
            if arrival is None:
                late += released < now - overdue
            else:
                late += arrival.latency >= LIMIT_SECONDS
        return late

    def _drain(self, stories: Sequence[int]) -> bool:
        deadline = time.monotonic() + self.drain_seconds
        waiting = list(stories)
        while waiting and time.monotonic() < deadline:
            self.check_alive()
            waiting = [n for n in waiting if self.receiver.get(n) is None]
            time.sleep(TICK_SECONDS)
        return not waiting

    def _latencies(self, counted: Sequence[tuple[int, float]]) -> tuple[float, ...]:
        found = (self.receiver.get(n) for n, _ in counted)
        return tuple(arrival.latency for arrival in found if arrival is not None)

    def warm_up(self, stories: int, rate: float, timeout: float) -> float:
        """Release a few stories and wait for all their alerts: the whole pipeline is up."""
        started = time.monotonic()
        planned = self.releases.plan(rate, stories / rate, time.time())
        waiting = [n for n, _ in planned]
        while waiting:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{len(waiting)} warm-up alerts missing after {timeout:.0f} s")
            self.check_alive()
            time.sleep(TICK_SECONDS)
            waiting = [n for n in waiting if self.receiver.get(n) is None]
        return time.monotonic() - started


def other_work(cores: dict[str, float]) -> float:
    """Cores used by everything on the machine that the bench did not start."""
    ours = sum(used for name, used in cores.items() if name != "machine")
    return cores.get("machine", ours) - ours


def _cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    wall = after["wall"] - before["wall"]
    return {k: (after[k] - before[k]) / wall for k in after if k != "wall" and k in before}


def search(probe: Callable[[float], Probe], bare: float, probes: int) -> list[Probe]:
    """Probes near the highest passing rate: from the target (80 % of bare), step by
    STEP of bare while every verdict agrees, then bisect between the highest pass and the
    lowest failure. (Until session 5 it bisected between 0 and 1.5x bare: a failure at
    the target spent the next probes at 40 % and 60 %.)

    A probe that failed while other work took more than DISTURBED_CORES is run again
    (up to RETRIES times a search): a neighbour's burst should not decide the figure.
    """
    low: float | None = None  # the highest rate that passed
    high: float | None = None  # the lowest rate that failed
    rate = FIRST_PROBE * bare
    done: list[Probe] = []
    retries = 0
    while len(done) < probes + retries:
        result = probe(round(rate, 1))
        done.append(result)
        if result.disturbed and retries < RETRIES:
            retries += 1
            continue
        if result.passed:
            low = rate if low is None else max(low, rate)
        else:
            high = rate if high is None else min(high, rate)
        rate = _next_rate(low, high, STEP * bare)
    return done


def _next_rate(low: float | None, high: float | None, step: float) -> float:
    if high is None:
        assert low is not None
        return low + step
    if low is None:
        return max(high - step, high / 2)
    return (low + high) / 2


def sustained(probes: Sequence[Probe]) -> Probe | None:
    """The passing probe with the highest rate.

    (In session 4 it was the one with the highest rate relative to the bare calls around
    it: the highest of several noisy ratios, so a low bare measurement after one probe
    could decide the figure.)"""
    passed = [p for p in probes if p.passed]
    return max(passed, key=lambda p: p.rate) if passed else None
