"""The poll loop: fetch due feeds, read them, publish new stories, then save state.

The loop knows nothing of Kafka: it is given a blocking `publish(stories)`
(returns once the stories are acknowledged), a `StateStore` and an
`Ownership` (which feeds this replica polls). State, and with it the seen ids
and HTTP validators, is saved only after `publish` returned, and in memory it
advances only then too: a crash or a failed publish means the stories are
fetched and offered again, never lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

from pipeline.config import Feed, Settings
from pipeline.errors import PipelineError, Retryable
from pipeline.http import Fetched, SafeFetcher
from pipeline.metrics import Metrics
from pipeline.models import RawStory
from pipeline.poller import schedule
from pipeline.poller.cycle import AllFeeds, CycleReport, Ownership, PollResult
from pipeline.poller.normalise import FeedReading, read_feed
from pipeline.poller.parsing import parse_executor
from pipeline.poller.state import FeedState, SeenStories, StateStore, remember, seen_share

log = logging.getLogger(__name__)

Publish = Callable[[list[RawStory]], None]

IDLE_SECONDS = 1.0
REFRESH_SECONDS = 2.0
COMMIT_LINGER_SECONDS = 0.05
MAX_COMMIT_BATCH = 500


class FeedPoller:
    """Polls its feeds on their schedules until stopped, or each once (`once=True`)."""

    def __init__(
        self,
        feeds: Sequence[Feed],
        settings: Settings,
        *,
        publish: Publish,
        store: StateStore,
        metrics: Metrics | None = None,
        ownership: Ownership | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        fetcher_factory: Callable[[], SafeFetcher] | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.feeds = [f for f in feeds if f.enabled]
        self.settings = settings
        self.publish = publish
        self.store = store
        self.metrics = metrics or Metrics()
        self.ownership = ownership or AllFeeds()
        self.guard = guard
        """Called every round; what it raises ends the loop (the broker away too long)."""
        self.clock = clock
        self.rand = rand
        self._new_fetcher = fetcher_factory or partial(
            SafeFetcher, settings.http, metrics=self.metrics
        )
        self.states: dict[str, FeedState] = {}
        self.seen = SeenStories(settings.poller.seen_capacity)
        self.report = CycleReport()
        self._share = seen_share(settings.poller.seen_capacity, len(self.feeds))
        self._owned: frozenset[str] = frozenset()
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._last_refresh = 0.0
        self._heartbeat = time.monotonic()
        self.metrics.declare_feeds(f.name for f in self.feeds)
        self.ownership.watch(lambda: frozenset(self._busy))

    @property
    def owned(self) -> frozenset[str]:
        """Names of the feeds this replica polls right now."""
        return self._owned

    def healthy(self, max_silence: float = 60.0) -> bool:
        """For /healthz: the loop went round recently."""
        return time.monotonic() - self._heartbeat < max_silence

    # --- the loop ----------------------------------------------------------------

    async def run(self, stop: threading.Event, *, once: bool = False) -> CycleReport:
        self._restore(await asyncio.to_thread(self.store.load))
        commits: asyncio.Queue[PollResult] = asyncio.Queue()
        with parse_executor(self.settings.poller.parse_workers) as pool:
            async with self._new_fetcher() as fetcher:
                committer = asyncio.create_task(self._commit_loop(commits))
                try:
                    await self._loop(stop, once, fetcher, pool, commits)
                finally:
                    await commits.join()
                    committer.cancel()
        return self.report

    async def _loop(
        self,
        stop: threading.Event,
        once: bool,
        fetcher: SafeFetcher,
        pool: Executor | None,
        commits: asyncio.Queue[PollResult],
    ) -> None:
        polls: set[asyncio.Task[None]] = set()
        polled: set[str] = set()
        while not stop.is_set():
            self._heartbeat = time.monotonic()
            if self.guard is not None:
                self.guard()
            self._wake.clear()  # before looking: a commit from now on cuts the idle wait short
            await self._track_ownership()
            for feed in self._due(once, polled):
                self._busy.add(feed.name)
                task = asyncio.create_task(self._poll_and_queue(feed, fetcher, pool, commits))
                polls.add(task)
                task.add_done_callback(polls.discard)
            if once and polled >= self._owned and not self._busy:
                break
            await self._idle()
        await asyncio.gather(*polls)

    async def _idle(self) -> None:
        now = self.clock()
        upcoming = [
            self.states[name].next_poll - now
            for name in self._owned - self._busy
            if name in self.states
        ]
        timeout = max(0.01, min([IDLE_SECONDS, *upcoming]))
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _due(self, once: bool, polled: set[str]) -> list[Feed]:
        now = self.clock()
        due = []
        for feed in self.feeds:
            if feed.name not in self._owned or feed.name in self._busy:
                continue
            state = self.states.get(feed.name)
            if once and feed.name in polled:
                continue
            if state is None or state.next_poll <= now or (once and not state.consecutive_errors):
                due.append(feed)
            elif once:
                retry_in = round(state.next_poll - now)
                log.info(
                    "feed backing off, skipped", extra={"feed": feed.name, "retry_in": retry_in}
                )
            if once:
                polled.add(feed.name)
        return due

    # --- ownership and state from elsewhere ----------------------------------------

    def _restore(self, states: dict[str, FeedState]) -> None:
        for state in states.values():
            self.seen.add(reversed(state.seen))
        self.states.update(states)
        log.info("poller state restored", extra={"feeds": len(states), "seen": len(self.seen)})

    async def _track_ownership(self) -> None:
        owned = frozenset(f.name for f in self.feeds if self.ownership.owns(f.name))
        gained = owned - self._owned
        if gained or self.clock() - self._last_refresh >= REFRESH_SECONDS:
            self._last_refresh = self.clock()
            try:
                refreshed = await asyncio.to_thread(self.store.refresh)
            except Retryable as exc:  # the broker is away: what we hold is still right
                log.warning("poller state not refreshed", extra={"reason": exc.reason})
                refreshed = []
            for state in refreshed:
                self._adopt(state, keep=self._owned & owned)
        if owned != self._owned:
            log.info("feeds owned", extra={"count": len(owned), "gained": len(gained),
                                           "lost": len(self._owned - owned)})  # fmt: skip
            self.metrics.feeds_owned.set(len(owned))
        self._owned = owned

    def _adopt(self, state: FeedState, keep: frozenset[str]) -> None:
        """A state another replica saved: learn its ids; take it over unless we poll the feed."""
        self.seen.add(reversed(state.seen))
        if state.name not in keep:
            self.states[state.name] = state

    # --- one feed ----------------------------------------------------------------------

    async def _poll_and_queue(
        self,
        feed: Feed,
        fetcher: SafeFetcher,
        pool: Executor | None,
        commits: asyncio.Queue[PollResult],
    ) -> None:
        try:
            result = await self._poll(feed, fetcher, pool)
        except Exception as exc:  # a bug on one feed must not stop the others
            log.exception("feed poll crashed", extra={"feed": feed.name, "reason": "crash"})
            result = self._failed(feed, PipelineError(repr(exc), reason="crash"), self.clock())
        await commits.put(result)

    async def _poll(self, feed: Feed, fetcher: SafeFetcher, pool: Executor | None) -> PollResult:
        state = self._state(feed)
        now = self.clock()
        try:
            fetched = await fetcher.fetch(feed.url, validators=state.validators_for(feed.url))
            digest = body_digest(fetched.body)
            if fetched.not_modified or (digest == state.body_hash and state.url == feed.url):
                return self._not_modified(feed, state, fetched, now)
            reading = await self._read(feed, fetched, pool, now)
        except PipelineError as exc:
            return self._failed(feed, exc, now)
        return self._fetched(feed, replace(state, body_hash=digest), fetched, reading, now)

    def _state(self, feed: Feed) -> FeedState:
        return self.states.get(feed.name) or FeedState(name=feed.name, url=feed.url)

    async def _read(
        self, feed: Feed, fetched: Fetched, pool: Executor | None, now: float
    ) -> FeedReading:
        job = partial(
            read_feed,
            fetched.body,
            feed=feed,
            url=fetched.url,
            content_type=fetched.headers.get("content-type"),
            seen_at=datetime.fromtimestamp(now, UTC),
        )
        if pool is None:
            return await asyncio.to_thread(job)
        # Submitted from a thread: the first submissions wait for the fork server to start
        # its workers, and the event loop must go on fetching meanwhile.
        return await asyncio.wrap_future(await asyncio.to_thread(pool.submit, job))

    def _fetched(
        self, feed: Feed, state: FeedState, fetched: Fetched, reading: FeedReading, now: float
    ) -> PollResult:
        listed = [story.id for story in reading.stories]
        new_ids = set(self.seen.claim(listed))
        stories = tuple(s for s in reading.stories if s.id in new_ids)
        if reading.malformed:
            log.info("feed recovered from malformed document",
                     extra={"feed": feed.name, "reason": reading.malformed})  # fmt: skip
        interval = schedule.adapt_interval(
            feed, self.settings.poller, current=state.interval, published=reading.published,
            new=len(stories), listed=len(listed), first_poll=state.last_success is None, now=now,
        )  # fmt: skip
        fresh_for = schedule.freshness_seconds(fetched.headers, datetime.fromtimestamp(now, UTC))
        delay = schedule.success_delay(
            interval, self.settings.poller, ttl=reading.ttl_seconds, fresh_for=fresh_for
        )
        new_state = replace(
            self._succeeded(feed, state, fetched, interval=interval, delay=delay, now=now),
            items_seen=state.items_seen + len(listed),
            stories_published=state.stories_published + len(stories),
            seen=remember(state.seen, listed, self._share),
        )
        return PollResult(feed.name, "ok", new_state, stories, len(listed))

    def _not_modified(
        self, feed: Feed, state: FeedState, fetched: Fetched, now: float
    ) -> PollResult:
        interval = schedule.adapt_interval(
            feed, self.settings.poller, current=state.interval, published=(), new=0, listed=0,
            first_poll=False, now=now,
        )  # fmt: skip
        fresh_for = schedule.freshness_seconds(fetched.headers, datetime.fromtimestamp(now, UTC))
        delay = schedule.success_delay(
            interval, self.settings.poller, ttl=None, fresh_for=fresh_for
        )
        new_state = self._succeeded(feed, state, fetched, interval=interval, delay=delay, now=now)
        return PollResult(feed.name, "not_modified", new_state)

    def _succeeded(
        self,
        feed: Feed,
        state: FeedState,
        fetched: Fetched,
        *,
        interval: float,
        delay: float,
        now: float,
    ) -> FeedState:
        jitter = schedule.jittered(delay, self.settings.poller.jitter_fraction, self.rand())
        return replace(
            state,
            url=feed.url,
            etag=fetched.validators.etag,
            last_modified=fetched.validators.last_modified,
            interval=interval,
            next_poll=now + jitter,
            last_poll=now,
            last_success=now,
            consecutive_errors=0,
            fetches=state.fetches + 1,
            fetches_304=state.fetches_304 + (1 if fetched.not_modified else 0),
        )

    def _failed(self, feed: Feed, error: PipelineError, now: float) -> PollResult:
        state = self._state(feed)
        errors = state.consecutive_errors + 1
        retry_after = error.retry_after if isinstance(error, Retryable) else None
        interval = state.interval or feed.interval or self.settings.poller.default_interval_seconds
        delay = schedule.error_delay(
            errors, interval, self.settings.poller, retry_after=retry_after
        )
        delay = schedule.jittered(delay, self.settings.poller.jitter_fraction, self.rand())
        log.warning(
            "feed poll failed",
            extra={"feed": feed.name, "reason": error.reason, "errors": errors,
                   "retry_in": round(delay), "error": str(error)},
        )  # fmt: skip
        new_state = replace(
            state,
            last_poll=now,
            last_error=f"{error.reason}: {error}",
            last_error_at=now,
            consecutive_errors=errors,
            next_poll=now + max(delay, retry_after or 0.0),
        )
        outcome = "throttled" if error.reason == "throttled" else "error"
        return PollResult(feed.name, outcome, new_state)

    # --- commit: publish, then save, then believe it ---------------------------------

    async def _commit_loop(self, commits: asyncio.Queue[PollResult]) -> None:
        while True:
            batch = [await commits.get()]
            await asyncio.sleep(COMMIT_LINGER_SECONDS)
            while not commits.empty() and len(batch) < MAX_COMMIT_BATCH:
                batch.append(commits.get_nowait())
            try:
                await self._commit(batch)
            except Exception:
                log.exception("commit failed", extra={"feeds": len(batch)})
            finally:
                for result in batch:
                    self._busy.discard(result.feed)
                    commits.task_done()
                self._wake.set()

    async def _commit(self, batch: list[PollResult]) -> None:
        stories = [story for result in batch for story in result.stories]
        if stories:
            try:
                await asyncio.to_thread(self.publish, stories)
            except Exception as exc:
                log.error("publish failed", extra={"stories": len(stories), "error": str(exc)})
                batch = [self._unpublished(result, exc) for result in batch]
        try:
            await asyncio.to_thread(self.store.save, [result.state for result in batch])
        except Exception as exc:
            log.error("saving poller state failed", extra={"feeds": len(batch), "error": str(exc)})
        for result in batch:
            self._apply(result)
        in_error = [
            n for n in self._owned if n in self.states and self.states[n].consecutive_errors
        ]
        self.metrics.feeds_in_error.set(len(in_error))

    def _unpublished(self, result: PollResult, exc: Exception) -> PollResult:
        """The feed's stories were not acknowledged: forget we saw them, keep the old state."""
        if not result.stories:
            return result
        self.seen.release(story.id for story in result.stories)
        feed = next(f for f in self.feeds if f.name == result.feed)
        return self._failed(
            feed, PipelineError(f"not published: {exc}", reason="publish"), self.clock()
        )

    def _apply(self, result: PollResult) -> None:
        self.states[result.feed] = result.state
        self.metrics.polls.labels(result.outcome).inc()
        self.report.polls[result.outcome] += 1
        if result.outcome in ("ok", "not_modified") and result.state.last_success is not None:
            self.metrics.feed_last_success.labels(result.feed).set(result.state.last_success)
            self.report.errors.pop(result.feed, None)
        elif result.state.last_error:
            self.report.errors[result.feed] = result.state.last_error
        self._count_entries(result)

    def _count_entries(self, result: PollResult) -> None:
        new = len(result.stories)
        for kind, count in (
            ("seen", result.listed),
            ("new", new),
            ("duplicate", result.listed - new),
        ):
            self.metrics.entries.labels(kind).inc(count)
            self.report.entries[kind] += count
        self.report.stories += new
        for story in result.stories:
            log.debug("story published", extra={"feed": result.feed, "story_id": story.id})


def body_digest(body: bytes) -> str | None:
    return hashlib.blake2b(body, digest_size=16).hexdigest() if body else None
