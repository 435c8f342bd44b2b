"""The safe fetcher and the poll loop against real HTTP on 127.0.0.1 (no broker needed)."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fetch_once import fetch_sync
from poller_feedserver import FeedServer, Route, rss

from pipeline.config import Feed, HttpSettings, PollerSettings, Settings
from pipeline.errors import FetchError, FetchRefused, FetchTimeout, ResponseTooLarge, Retryable
from pipeline.http import IPAddress, SafeFetcher, Validators
from pipeline.metrics import Metrics
from pipeline.models import RawStory
from pipeline.poller.cycle import CycleReport
from pipeline.poller.stage import FeedPoller
from pipeline.poller.state import MemoryStateStore, SqliteStateStore, StateStore

LOOPBACK = HttpSettings(allow_private_networks=True, timeout_seconds=5)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    yield srv
    srv.close()


def only_127_0_0_1(address: IPAddress) -> bool:
    """The test server's address passes; every other non-public address is still refused."""
    return address == ipaddress.ip_address("127.0.0.1")


# --- the fetcher ------------------------------------------------------------------------


def test_conditional_get(server: FeedServer) -> None:
    server.route("/feed", Route(rss([("a", "https://s.example/a")]), etag='"v1"',
                                headers={"Last-Modified": "Tue, 02 Jan 2024 10:00:00 GMT"}))  # fmt: skip
    first = fetch_sync(LOOPBACK, server.url("/feed"))
    assert first.status == 200 and b"<rss" in first.body
    assert first.validators == Validators('"v1"', "Tue, 02 Jan 2024 10:00:00 GMT")
    second = fetch_sync(LOOPBACK, server.url("/feed"), validators=first.validators)
    assert second.status == 304 and second.not_modified and second.body == b""
    assert second.validators == first.validators
    sent = server.hits("/feed")[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Tue, 02 Jan 2024 10:00:00 GMT"
    assert sent["user-agent"].startswith("newsmon/")


def test_gzip_is_decoded(server: FeedServer) -> None:
    server.route("/gz", Route(b"x" * 100_000, gzip=True))
    assert fetch_sync(LOOPBACK, server.url("/gz")).body == b"x" * 100_000


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "120", 120.0), (503, "Wed, 21 Oct 2099 07:28:00 GMT", None), (429, None, None)],
)
def test_throttling_is_retryable_with_retry_after(
    server: FeedServer, status: int, retry_after: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    server.route("/busy", Route(b"slow down", status=status, headers=headers))
    with pytest.raises(Retryable) as caught:
        fetch_sync(LOOPBACK, server.url("/busy"))
    assert caught.value.reason == "throttled"
    if status == 503 and retry_after:
        assert caught.value.retry_after is not None and caught.value.retry_after > 1e9 / 1000
    else:
        assert caught.value.retry_after == expected


@pytest.mark.parametrize(
    ("status", "reason"), [(404, "http_4xx"), (410, "http_4xx"), (500, "http_5xx")]
)
def test_http_errors(server: FeedServer, status: int, reason: str) -> None:
    server.route("/x", Route(b"no", status=status))
    with pytest.raises(FetchError) as caught:
        fetch_sync(LOOPBACK, server.url("/x"))
    assert caught.value.reason == reason
    assert str(status) in str(caught.value)


def test_a_50_mb_body_is_refused_without_reading_it(server: FeedServer) -> None:
    server.route("/huge", Route(b"<rss>" + b"a" * 50_000_000, chunked_size=65_536))
    with pytest.raises(ResponseTooLarge):
        fetch_sync(LOOPBACK, server.url("/huge"), max_bytes=1_000_000)
    assert server.bytes_sent < 10_000_000


def test_an_unwanted_content_type_is_refused_before_its_body(server: FeedServer) -> None:
    pdf = Route(
        b"%PDF-1.7" + b"x" * 20_000_000,
        headers={"Content-Type": "application/pdf"},
        chunked_size=65_536,
    )
    server.route("/report.pdf", pdf)
    with pytest.raises(FetchError) as caught:
        fetch_sync(LOOPBACK, server.url("/report.pdf"), wanted=lambda t: t.startswith("text/html"))
    assert caught.value.reason == "unwanted_type"
    assert server.bytes_sent < 5_000_000


def test_a_gzip_bomb_is_refused(server: FeedServer) -> None:
    server.route("/bomb", Route(b"\0" * 30_000_000, gzip=True))
    with pytest.raises(ResponseTooLarge):
        fetch_sync(LOOPBACK, server.url("/bomb"), max_bytes=1_000_000)


def test_declared_length_over_the_limit_is_refused(server: FeedServer) -> None:
    server.route("/big", Route(b"a" * 2_000_000))
    with pytest.raises(ResponseTooLarge, match="declared"):
        fetch_sync(LOOPBACK, server.url("/big"), max_bytes=1_000_000)


def test_total_time_limit(server: FeedServer) -> None:
    server.route("/slow", Route(b"late", delay=2.0))
    with pytest.raises(FetchTimeout) as caught:
        fetch_sync(LOOPBACK, server.url("/slow"), timeout=0.3)
    assert isinstance(caught.value, Retryable)


def test_redirects_are_followed_and_limited(server: FeedServer) -> None:
    server.route("/old", Route(status=301, headers={"Location": "/new"}))
    server.route("/new", Route(b"moved here"))
    fetched = fetch_sync(LOOPBACK, server.url("/old"))
    assert fetched.url == server.url("/new") and fetched.body == b"moved here"
    server.route("/loop", Route(status=302, headers={"Location": "/loop"}))
    with pytest.raises(FetchError) as caught:
        fetch_sync(LOOPBACK, server.url("/loop"))
    assert caught.value.reason == "redirects"
    assert len(server.hits("/loop")) == LOOPBACK.max_redirects + 1


def test_loopback_is_refused_by_default(server: FeedServer) -> None:
    server.route("/feed", Route(b"secret"))
    with pytest.raises(FetchRefused):
        fetch_sync(HttpSettings(), server.url("/feed"))
    with pytest.raises(FetchRefused):
        fetch_sync(HttpSettings(), f"http://localhost:{server.port}/feed")
    assert server.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/internal",
        "http://[::1]:{port}/internal",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://[::ffff:192.168.0.1]/",
        "http://0.0.0.0:{port}/",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_to_a_private_address_is_refused(server: FeedServer, target: str) -> None:
    server.route("/jump", Route(status=302, headers={"Location": target.format(port=server.port)}))

    async def fetch() -> None:
        async with SafeFetcher(HttpSettings(), address_allowed=only_127_0_0_1) as fetcher:
            await fetcher.fetch(server.url("/jump"))

    with pytest.raises(FetchRefused):
        asyncio.run(fetch())
    assert [r.path for r in server.requests] == ["/jump"]


def test_per_host_limit(server: FeedServer) -> None:
    server.route("/slow", Route(b"ok", delay=0.2))
    settings = LOOPBACK.model_copy(update={"max_per_host": 2})

    async def fetch_many() -> None:
        async with SafeFetcher(settings) as fetcher:
            await asyncio.gather(*(fetcher.fetch(server.url("/slow")) for _ in range(8)))

    asyncio.run(fetch_many())
    assert len(server.hits("/slow")) == 8
    assert server.max_in_flight == 2


def test_fetch_duration_is_recorded(server: FeedServer) -> None:
    server.route("/feed", Route(b"x"))
    metrics = Metrics()
    fetch_sync(LOOPBACK, server.url("/feed"), metrics=metrics, kind="feed")
    assert metrics.registry.get_sample_value("newsmon_fetch_seconds_count", {"kind": "feed"}) == 1


# --- the poll loop, without Kafka ---------------------------------------------------------


class Sink:
    """A publish callable that records what it was given (and can be made to fail)."""

    def __init__(self) -> None:
        self.stories: list[RawStory] = []
        self.fail = False

    def __call__(self, stories: list[RawStory]) -> None:
        if self.fail:
            raise Retryable("broker down", reason="publish")
        self.stories.extend(stories)


def settings(**http: object) -> Settings:
    return Settings(
        http=LOOPBACK.model_copy(update=http),
        poller=PollerSettings(parse_workers=1, min_interval_seconds=1),
    )


def poll(
    feeds: list[Feed], store: StateStore, sink: Sink, metrics: Metrics | None = None, **http: object
) -> CycleReport:
    poller = FeedPoller(feeds, settings(**http), publish=sink, store=store, metrics=metrics)
    return asyncio.run(poller.run(threading.Event(), once=True))


def test_poll_publish_then_not_modified(server: FeedServer) -> None:
    items = [("one", "https://s.example/1?utm_source=x"), ("two", "https://s.example/2")]
    server.route("/a", Route(rss(items), etag='"a1"'))
    feeds = [Feed(url=server.url("/a"), name="a", tags=["t"])]
    store, sink, metrics = MemoryStateStore(), Sink(), Metrics()
    report = poll(feeds, store, sink, metrics)
    assert report.polls == {"ok": 1}
    assert [s.url for s in sink.stories] == ["https://s.example/1", "https://s.example/2"]
    assert all(s.feed == "a" and s.tags == ["t"] for s in sink.stories)
    report = poll(feeds, store, sink, metrics)
    assert report.polls == {"not_modified": 1}
    assert len(sink.stories) == 2
    assert server.hits("/a")[1].headers["if-none-match"] == '"a1"'
    sample = metrics.registry.get_sample_value
    assert sample("newsmon_feed_polls_total", {"outcome": "ok"}) == 1
    assert sample("newsmon_feed_polls_total", {"outcome": "not_modified"}) == 1
    assert sample("newsmon_feed_entries_total", {"kind": "new"}) == 2
    last_success = sample("newsmon_feed_last_success_timestamp_seconds", {"feed": "a"})
    assert last_success is not None and last_success > 0
    state = store.load()["a"]
    assert (state.fetches, state.fetches_304) == (2, 1), "the feeds page's 304 ratio"


def test_no_story_twice_across_feeds_relistings_and_restarts(
    server: FeedServer, tmp_path: Path
) -> None:
    server.route("/a", Route(rss([("Story", "https://s.example/story?utm_medium=a")])))
    server.route("/b", Route(rss([("Story, other feed", "https://s.example/story#frag")])))
    feeds = [Feed(url=server.url("/a"), name="a"), Feed(url=server.url("/b"), name="b")]
    sink = Sink()
    store = SqliteStateStore(tmp_path)
    report = poll(feeds, store, sink)
    assert len(sink.stories) == 1
    assert report.entries == {"seen": 2, "new": 1, "duplicate": 1}
    store.close()
    # restart; feed a re-lists the story with a new guid and an edited title
    server.route("/a", Route(rss([("Story (updated)", "https://s.example/story")]).replace(
        b"<guid>https://s.example/story</guid>", b"<guid>new-guid-7</guid>")))  # fmt: skip
    store = SqliteStateStore(tmp_path)
    report = poll(feeds, store, sink)
    store.close()
    assert len(sink.stories) == 1
    assert report.entries["duplicate"] == 1
    assert report.polls == {"ok": 1, "not_modified": 1}  # b sent the same bytes: not parsed


def test_same_bytes_without_validators_are_not_parsed_again(server: FeedServer) -> None:
    server.route("/plain", Route(rss([("one", "https://s.example/1")])))  # no ETag at all
    feeds = [Feed(url=server.url("/plain"), name="plain")]
    store, sink = MemoryStateStore(), Sink()
    assert poll(feeds, store, sink).polls == {"ok": 1}
    assert poll(feeds, store, sink).polls == {"not_modified": 1}
    server.route(
        "/plain", Route(rss([("two", "https://s.example/2"), ("one", "https://s.example/1")]))
    )
    assert poll(feeds, store, sink).polls == {"ok": 1}
    assert [s.url for s in sink.stories] == ["https://s.example/1", "https://s.example/2"]
    state = store.load()["plain"]
    assert (state.fetches, state.fetches_304) == (3, 0), "the same bytes again are no 304"


def test_state_is_saved_only_after_publish(server: FeedServer) -> None:
    server.route("/a", Route(rss([("one", "https://s.example/1")]), etag='"a1"'))
    feeds = [Feed(url=server.url("/a"), name="a")]
    store, sink = MemoryStateStore(), Sink()
    sink.fail = True
    report = poll(feeds, store, sink)
    assert report.polls == {"error": 1}
    assert "publish" in report.errors["a"]
    assert store.load().get("a") is None or store.load()["a"].etag is None
    sink.fail = False
    poll(feeds, store, sink)  # backing off: skipped by --once
    store.save([replace(store.load()["a"], next_poll=0.0)])
    poll(feeds, store, sink)
    assert [s.url for s in sink.stories] == ["https://s.example/1"]
    assert "if-none-match" not in server.hits("/a")[-1].headers


def test_a_bad_feed_does_not_stop_the_others(server: FeedServer) -> None:
    server.route("/good", Route(rss([("fine", "https://s.example/fine")])))
    server.route("/html", Route(b"<html><body>not a feed</body></html>",
                                headers={"Content-Type": "text/html"}))  # fmt: skip
    server.route("/gone", Route(b"", status=404))
    feeds = [Feed(url=server.url(p), name=p.strip("/")) for p in ("/good", "/html", "/gone")]
    metrics, sink = Metrics(), Sink()
    report = poll(feeds, MemoryStateStore(), sink, metrics)
    assert report.polls == {"ok": 1, "error": 2}
    assert report.errors["html"].startswith("not_a_feed")
    assert report.errors["gone"].startswith("http_4xx")
    assert [s.url for s in sink.stories] == ["https://s.example/fine"]
    assert metrics.registry.get_sample_value("newsmon_feeds_in_error") == 2


def test_retry_after_is_honoured(server: FeedServer) -> None:
    server.route("/busy", Route(b"", status=429, headers={"Retry-After": "3600"}))
    feeds = [Feed(url=server.url("/busy"), name="busy")]
    store, sink, metrics = MemoryStateStore(), Sink(), Metrics()
    report = poll(feeds, store, sink, metrics)
    assert report.polls == {"throttled": 1}
    busy = store.load()["busy"]
    assert busy.last_poll is not None
    assert busy.next_poll - busy.last_poll >= 3600
    poll(feeds, store, sink, metrics)  # not due yet: not asked again
    assert len(server.hits("/busy")) == 1
    assert (
        metrics.registry.get_sample_value("newsmon_feed_polls_total", {"outcome": "throttled"}) == 1
    )


def test_private_feeds_are_refused_unless_allowed(server: FeedServer) -> None:
    server.route("/a", Route(rss([("one", "https://s.example/1")])))
    feeds = [Feed(url=server.url("/a"), name="a")]
    report = poll(feeds, MemoryStateStore(), Sink(), allow_private_networks=False)
    assert report.errors["a"].startswith("refused")
    assert server.requests == []


def test_a_huge_feed_is_an_error_for_that_feed_only(server: FeedServer) -> None:
    items = [(f"t{i}", f"https://s.example/{i}") for i in range(20_000)]
    server.route("/huge", Route(rss(items)))
    server.route("/small", Route(rss([("ok", "https://s.example/ok")])))
    feeds = [
        Feed(url=server.url("/huge"), name="huge"),
        Feed(url=server.url("/small"), name="small"),
    ]
    report = poll(feeds, MemoryStateStore(), Sink(), max_bytes=1_000_000)
    assert report.errors["huge"].startswith("too_large")
    assert report.polls == {"ok": 1, "error": 1}


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_parse_workers_exit_when_the_poller_is_killed() -> None:
    script = (
        "import os, sys\n"
        "from pipeline.poller.parsing import parse_executor\n"
        "with parse_executor(2) as pool:\n"
        "    print(*{pool.submit(os.getpid).result() for _ in range(8)}, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as poller:
        assert poller.stdout is not None
        workers = [int(pid) for pid in poller.stdout.readline().split()]
        assert workers and all(_running(pid) for pid in workers)
        poller.kill()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers):
        assert time.monotonic() < deadline, f"parse workers {workers} outlived the poller"
        time.sleep(0.1)
