"""Spike rules: count a rule's matching stories over time, fire once when they surge.

A rule with `spike:` does not alert per story. Each story it matches is counted in
a time bucket (a twelfth of the window); the window is the last twelve buckets up to
the newest story seen, the baseline the `baseline` span before it. The rule fires
when the window's count reaches `min_count` and `factor` times the baseline's mean
count per window, and then not again until the spike is over: at least one window
after it fired, a story finds the window's count under half that threshold. The mean
is taken over the part of the baseline since the rule counted its first story, and a
rule with less than one window of history only learns: a rule added for a name that
is always in the news does not fire because its first hour compares with nothing.

Time is the story's own (`story_time`), never the wall clock, so a replay or a
backtest of the same stories in the same order decides the same; the detector's
"now" is the newest story time it has seen for the rule (a late story is counted in
its own bucket, but does not move the window back). Only the alert's `raised_at` and
its throttle window read a clock: the engine's, injected (`RulesEngine(clock=...)`).

The counts live in the rules store (`spike_store.py`), per partition and mirrored to
the changelog like the rest of the rules' state: on Kafka the owner of a rule's
candidate partition holds its counts, and a replica that takes it over restores
them before it counts a story. Each story counts once per rule (its id is kept
while its bucket is within the baseline), so a record read again after a crash is
not counted twice; buckets and ids older than the baseline are pruned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pipeline.config.rules import Spike
from pipeline.models import AlertStory, SpikeCounts
from pipeline.rules.spike_store import SpikeState, SpikeStore

BUCKETS_PER_WINDOW = 12
MAX_HEADLINES = 5
RECENT_KEPT = 2 * MAX_HEADLINES


def story_time(published: datetime, first_seen: datetime) -> float:
    """When a story counts: its publication time, but never later than a poller first saw
    it (a feed that dates its entries in the future cannot push them ahead), and a feed's
    backlog read for the first time lands in the past where it belongs, not in a burst
    now."""
    return min(published, first_seen).timestamp()


@dataclass(frozen=True)
class Spans:
    """Where the window and the baseline lie for a rule at a moment (epoch seconds)."""

    bucket_seconds: int
    bucket: int  # start of the bucket of "now"
    window_start: int
    baseline_start: int


def spans(spike: Spike, now: float) -> Spans:
    width = spike.window_seconds // BUCKETS_PER_WINDOW
    bucket = math.floor(now / width) * width
    window_start = bucket - (BUCKETS_PER_WINDOW - 1) * width
    return Spans(width, bucket, window_start, window_start - spike.baseline_seconds)


def bucket_of(spike: Spike, at: float) -> int:
    width = spike.window_seconds // BUCKETS_PER_WINDOW
    return math.floor(at / width) * width


@dataclass(frozen=True)
class Verdict:
    window_count: int
    baseline_mean: float
    threshold: float

    @property
    def surging(self) -> bool:
        return self.window_count >= self.threshold

    @property
    def subsided(self) -> bool:
        """Under half the threshold: a count that wavers around the threshold is one spike
        that goes on, not a string of them."""
        return self.window_count < self.threshold / 2


def judge(spike: Spike, window_count: int, baseline_count: int, observed: float) -> Verdict:
    """The baseline's mean is over the `observed` windows of it (those since the rule began
    counting): a new rule compares with the history it has, not with zeros. Until it has
    one whole window of history it learns and never surges."""
    if observed < 1:
        return Verdict(window_count, 0.0, math.inf)
    mean = baseline_count / min(observed, spike.baseline_windows)
    return Verdict(window_count, mean, max(float(spike.min_count), spike.factor * mean))


def observed_windows(spike: Spike, where: Spans, started: float) -> float:
    """Windows of the baseline since the rule counted its first story."""
    return (where.window_start - max(where.baseline_start, started)) / spike.window_seconds


@dataclass(frozen=True)
class Fired:
    """A spike to alert on. `key` names it in the alert ledger (and in its alert id);
    `counts` is None when a story that already fired it comes again (after a crash): the
    ledger then re-publishes the pending alert, if it never left."""

    key: str
    counts: SpikeCounts | None


class SpikeDetector:
    """Counts and decides, against the rules store; call inside `store.transaction()`."""

    def __init__(self, store: SpikeStore) -> None:
        self.store = store

    def count(
        self, rule_id: str, spike: Spike, story: AlertStory, first_seen: datetime, part: int = 0
    ) -> Fired | None:
        """Count one matching story; the spike it sets off, if any."""
        state = self.store.state(rule_id) or SpikeState()
        if self.store.seen(rule_id, story.id):
            if state.fired_story == story.id and state.fired_key is not None:
                return Fired(state.fired_key, None)
            return None
        at = story_time(story.published, first_seen)
        now = max(state.watermark, at)
        where = spans(spike, now)
        if at < where.baseline_start:  # older than anything the rule still compares
            return None
        bucket = bucket_of(spike, at)
        self.store.add(rule_id, bucket, story.id, part)
        started = bucket if state.started is None else min(state.started, bucket)
        recent = _recent(state.recent, at, story, where)
        state = replace(state, watermark=now, started=started, recent=recent)
        if state.pruned_before < where.baseline_start:
            self.store.prune(rule_id, where.baseline_start, part)
            state = replace(state, pruned_before=where.baseline_start)
        verdict = judge(
            spike,
            self.store.total(rule_id, where.window_start, None),
            self.store.total(rule_id, where.baseline_start, where.window_start),
            observed_windows(spike, where, started),
        )
        state, fired = _decide(spike, state, verdict, where, story_id=story.id, now=now)
        self.store.put_state(rule_id, state, part)
        return fired


def _decide(
    spike: Spike, state: SpikeState, verdict: Verdict, where: Spans, *, story_id: str, now: float
) -> tuple[SpikeState, Fired | None]:
    """Fire if armed and surging; re-arm a window after firing once the surge is over."""
    if state.fired_at is not None:
        if now >= state.fired_at + spike.window_seconds and verdict.subsided:
            state = replace(state, fired_at=None, fired_key=None, fired_story=None)
        return state, None
    if not verdict.surging:
        return state, None
    key = f"spike@{datetime.fromtimestamp(where.bucket, UTC).isoformat()}"
    counts = SpikeCounts(
        window_start=datetime.fromtimestamp(where.window_start, UTC),
        window_end=datetime.fromtimestamp(now, UTC),
        window_seconds=spike.window_seconds,
        baseline_seconds=spike.baseline_seconds,
        window_count=verdict.window_count,
        baseline_mean=round(verdict.baseline_mean, 3),
        factor=spike.factor,
        min_count=spike.min_count,
        headlines=headlines(state.recent, where.window_start),
    )
    fired = replace(state, fired_at=now, fired_key=key, fired_story=story_id)
    return fired, Fired(key, counts)


def _recent(
    recent: tuple[tuple[float, AlertStory], ...], at: float, story: AlertStory, where: Spans
) -> tuple[tuple[float, AlertStory], ...]:
    """The newest stories of the window (the makings of the alert's headlines), bounded."""
    kept = [(t, s) for t, s in recent if t >= where.window_start]
    if at >= where.window_start:
        kept.append((at, story))
    kept.sort(key=lambda item: item[0], reverse=True)
    return tuple(kept[:RECENT_KEPT])


def headlines(recent: tuple[tuple[float, AlertStory], ...], since: float) -> list[AlertStory]:
    """A few stories of the window, newest first, one per headline (syndicated copies of a
    wire story share it) and preferring outlets not shown yet."""
    window = [s for t, s in sorted(recent, key=lambda item: -item[0]) if t >= since]
    titles: set[str] = set()
    distinct = []
    for story in window:
        title = " ".join((story.title or story.url).casefold().split())
        if title not in titles:
            titles.add(title)
            distinct.append(story)
    sources: set[str] = set()
    first: list[AlertStory] = []
    rest: list[AlertStory] = []
    for story in distinct:
        (rest if story.source in sources else first).append(story)
        sources.add(story.source)
    return (first + rest)[:MAX_HEADLINES]
