"""The spike detector on synthetic timelines: what fires, once, and what a restart keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config.rules import Spike
from pipeline.models import AlertStory
from pipeline.rules.spike import Fired, SpikeDetector, headlines, judge, spans, story_time
from pipeline.rules.store import MEMORY, AlertStore

T0 = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
HOURLY = Spike.model_validate({"window": "1h", "baseline": "7d", "factor": 3, "min_count": 5})


def story(n: int, at: datetime, title: str | None = None) -> AlertStory:
    return AlertStory(
        id=f"story-{n}", url=f"https://news.example/{n}", title=title or f"Headline {n}",
        source=f"feed-{n % 4}", published=at,
    )  # fmt: skip


def steady(per_hour: float, start: datetime, hours: float) -> list[datetime]:
    """Stories evenly spaced at a constant rate."""
    gap = HOUR / per_hour
    return [start + k * gap for k in range(int(per_hour * hours))]


def rising(rate: Callable[[float], float], start: datetime, hours: float) -> list[datetime]:
    """A story each time the integral of `rate` (stories per hour at hour h) passes a whole
    number, in steps of a minute: a deterministic timeline with that rate."""
    times, total, minute = [], 0.0, 1 / 60
    for step in range(int(hours * 60)):
        before = total
        total += rate(step * minute) * minute
        times += [start + timedelta(minutes=step)] * (int(total) - int(before))
    return times


class Feed:
    """A detector over a store, fed a timeline one story at a time, as the engine does."""

    def __init__(self, store: AlertStore, spike: Spike = HOURLY) -> None:
        self.store = store
        self.spike = spike
        self.detector = SpikeDetector(store.spikes)
        self.fired: list[tuple[int, Fired]] = []
        self.times: dict[int, datetime] = {}
        self.next = 0

    def run(self, times: Iterable[datetime], numbers: Iterable[int] | None = None) -> None:
        for n, at in zip(numbers or self._numbers(), times, strict=False):
            self.times[n] = at
            with self.store.transaction():
                fired = self.detector.count("r", self.spike, story(n, at), at)
            if fired is not None:
                self.fired.append((n, fired))

    def _numbers(self) -> Iterator[int]:
        while True:
            self.next += 1
            yield self.next

    def spikes(self) -> list[Fired]:
        return [f for _, f in self.fired if f.counts is not None]


@pytest.fixture
def memory() -> Iterator[AlertStore]:
    store = AlertStore(MEMORY)
    yield store
    store.close()


def test_a_steady_term_never_fires_not_even_when_its_rule_is_new(memory: AlertStore) -> None:
    feed = Feed(memory)
    feed.run(steady(10, T0, 9 * 24))
    assert feed.fired == []


def test_a_jump_fires_once_with_its_counts_and_headlines(memory: AlertStore) -> None:
    feed = Feed(memory)
    feed.run(steady(2, T0, 8 * 24))
    jump_at = T0 + 8 * 24 * HOUR
    feed.run(steady(40, jump_at, 1))
    feed.run(steady(2, jump_at + HOUR, 24))  # the surge over, then a day of the usual

    [spike] = feed.spikes()
    assert spike.counts is not None
    counts = spike.counts
    assert counts.window_count >= max(5, 3 * counts.baseline_mean)
    assert 1.5 <= counts.baseline_mean <= 2.5
    assert counts.window_start >= jump_at - HOUR
    assert counts.window_seconds == 3600 and counts.baseline_seconds == 7 * 86400
    assert 1 <= len(counts.headlines) <= 5
    assert counts.headlines == sorted(counts.headlines, key=lambda s: s.published, reverse=True)
    assert spike.key.startswith("spike@")


def test_the_rule_rearms_once_the_surge_is_over_and_fires_for_the_next_one(
    memory: AlertStore,
) -> None:
    feed = Feed(memory)
    feed.run(steady(2, T0, 8 * 24))
    first = T0 + 8 * 24 * HOUR
    feed.run(steady(40, first, 2))  # two hours of surge: still one spike
    feed.run(steady(2, first + 2 * HOUR, 12))
    second = first + 14 * HOUR
    feed.run(steady(60, second, 1))

    spikes = feed.spikes()
    assert len(spikes) == 2
    assert spikes[0].key != spikes[1].key


def test_a_surge_that_wavers_around_the_threshold_stays_one_spike(memory: AlertStore) -> None:
    feed = Feed(memory)
    feed.run(steady(2, T0, 8 * 24))
    jump = T0 + 8 * 24 * HOUR
    minute = timedelta(minutes=1)
    burst = [jump + k * minute for k in range(6)]  # fires at 6 (3x the mean of 2)
    wavering = steady(5, jump + 10 * minute, 3)  # then 5 an hour: under 6, over half of it
    bump = [jump + (130 + k) * minute for k in range(3)]  # back over 6 for a moment
    feed.run(sorted(burst + wavering + bump))
    assert len(feed.spikes()) == 1


def test_a_slow_rise_under_the_factor_does_not_fire(memory: AlertStore) -> None:
    feed = Feed(memory)
    # from 2 to 14 stories an hour over nine days: each hour well under 3x the week's mean
    feed.run(rising(lambda h: 2 + 12 * h / (9 * 24), T0, 9 * 24))
    assert feed.fired == []


def test_a_jump_below_the_minimum_count_does_not_fire(memory: AlertStore) -> None:
    feed = Feed(memory)
    feed.run(steady(0.1, T0, 8 * 24))  # a story every ten hours
    jump = T0 + 8 * 24 * HOUR
    feed.run(steady(4, jump, 1))  # 4 in an hour: 36x the mean, but under 5
    assert feed.fired == []
    feed.run([jump + timedelta(minutes=50)])
    assert len(feed.spikes()) == 1  # ... and the fifth in the window sets it off


def test_a_story_counts_once_however_often_it_comes(memory: AlertStore) -> None:
    feed = Feed(memory)
    feed.run(steady(2, T0, 8 * 24))
    jump = T0 + 8 * 24 * HOUR
    times = steady(40, jump, 1)
    for _ in range(3):  # the same stories three times: re-read records, re-polled stories
        feed.run(times[:4], numbers=range(10_000, 10_004))
    assert feed.fired == []
    assert memory.spikes.total("r", jump.timestamp(), None) == 4


def _reference(tmp_path: Path, times: list[datetime]) -> tuple[int, Fired]:
    store = AlertStore(tmp_path / "reference.sqlite3")
    feed = Feed(store)
    feed.run(times)
    store.close()
    [(n, fired)] = feed.fired
    return n, fired


def test_a_restart_in_the_middle_of_a_window_neither_loses_nor_doubles_counts(
    tmp_path: Path,
) -> None:
    times = steady(2, T0, 8 * 24) + steady(12, T0 + 8 * 24 * HOUR, 1)
    want_n, want = _reference(tmp_path, times)
    half = len(times) - 8  # stopped with the window part counted
    path = tmp_path / "rules.sqlite3"

    before = AlertStore(path)
    feed = Feed(before)
    feed.run(times[:half])
    before.close()
    assert feed.fired == []

    after = AlertStore(path)
    resumed = Feed(after)
    resumed.next = half - 3
    resumed.run(times[half - 3 :])  # the last three read again, as after a kill -9
    after.close()

    [(n, fired)] = resumed.fired
    assert (n, fired) == (want_n, want)


def test_the_story_that_fired_a_spike_names_it_again_when_it_comes_back(
    memory: AlertStore,
) -> None:
    feed = Feed(memory)
    feed.run(steady(2, T0, 8 * 24))
    times = steady(40, T0 + 8 * 24 * HOUR, 1)
    feed.run(times)
    [(n, spike)] = feed.fired
    feed.run([feed.times[n]], numbers=[n])
    assert feed.fired[-1] == (n, Fired(spike.key, None))  # the ledger re-publishes if pending


def test_counts_are_pruned_past_the_baseline(memory: AlertStore) -> None:
    daily = Spike.model_validate({"window": "1h", "baseline": "1d"})
    feed = Feed(memory, daily)
    feed.run(steady(6, T0, 20 * 24))
    # 12 buckets an hour over a day and an hour, and the ids of that span's stories
    assert memory.spikes.rows("r") <= 12 * 25 + 6 * 26


def test_story_time_is_publication_but_never_after_first_seen() -> None:
    published = T0 + HOUR
    assert story_time(published, T0) == T0.timestamp()
    assert story_time(T0, published) == T0.timestamp()


def test_the_window_is_twelve_buckets_ending_with_now() -> None:
    where = spans(HOURLY, T0.timestamp() + 301)
    assert where.bucket_seconds == 300
    assert where.bucket == T0.timestamp() + 300
    assert where.window_start == T0.timestamp() + 300 - 11 * 300
    assert where.baseline_start == where.window_start - 7 * 86400


@pytest.mark.parametrize(
    ("window", "baseline", "observed", "surging"),
    [(5, 0, 0.5, False), (5, 0, 1, True), (4, 0, 168, False), (30, 1680, 168, True),
     (29, 1680, 168, False), (14, 420, 84, False), (15, 420, 84, True)],
)  # fmt: skip
def test_judge(window: int, baseline: int, observed: float, surging: bool) -> None:
    assert judge(HOURLY, window, baseline, observed).surging is surging


def test_headlines_one_per_title_newest_first_other_outlets_before_repeats() -> None:
    a = story(1, T0, "Same wire story")
    b = story(5, T0 + HOUR, "Same wire story")  # same feed as 1, same title
    c = story(2, T0 + 2 * HOUR)
    d = story(6, T0 + 3 * HOUR)  # feed-2, like c
    recent = tuple((s.published.timestamp(), s) for s in (a, b, c, d))
    assert [s.id for s in headlines(recent, T0.timestamp())] == ["story-6", "story-5", "story-2"]
