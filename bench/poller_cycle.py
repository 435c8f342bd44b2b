"""One poller cycle over 1,000 feeds served with 100 ms latency, against a sequential baseline.

    python bench/poller_cycle.py [--feeds 1000] [--hosts 250] [--latency 0.1] [--baseline-feeds N]

A separate process serves the feeds on loopback addresses 127.0.1.x (several
publishers, as in life, so the per-host limit applies as it would), each
answer delayed by the latency, with ETags so an unchanged feed costs a 304.
Printed: the first cycle (one poller process, parse workers as configured),
a sequential fetch-and-parse of the same feeds (httpx + feedparser, one after
the other) measured in the same run, and the bytes and time of a second cycle
where nothing changed. The first cycle runs `--repeat` times from empty state
(the machine's speed varies); the median counts. `--baseline-feeds N` times the
baseline on N feeds and scales it, to save minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import resource
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from multiprocessing.synchronize import Event as EventType

import feedparser
import httpx

from pipeline.config import Feed, HttpSettings, PollerSettings, Settings
from pipeline.models import RawStory
from pipeline.poller.cycle import CycleReport
from pipeline.poller.stage import FeedPoller
from pipeline.poller.state import MemoryStateStore

ENTRIES_PER_FEED = 25
STATS_PATH = "/__stats"


def feed_body(index: int) -> bytes:
    """A realistic feed: 25 entries with ~200-character summaries, categories, dates."""
    now = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
    items = []
    for n in range(ENTRIES_PER_FEED):
        when = format_datetime(now - timedelta(minutes=37 * n + index), usegmt=True)
        items.append(
            f"<item><title>Feed {index} story {n}: markets &amp; politics today</title>"
            f"<link>https://publisher{index % 250}.example/news/{index}/{n}?utm_source=rss</link>"
            f"<guid isPermaLink='false'>{index}-{n}</guid><pubDate>{when}</pubDate>"
            f"<category>world</category><description>&lt;p&gt;Summary of story {n} in feed "
            f"{index}. "
            + "Officials said the talks would continue next week. " * 3
            + "&lt;/p&gt;</description></item>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Feed {index}</title><link>https://publisher{index}.example/</link>"
        f"<language>en</language>{''.join(items)}</channel></rss>"
    ).encode()


# --- the server (its own process) ---------------------------------------------------------


def serve(hosts: list[str], port: int, feeds: int, latency: float, ready: EventType) -> None:
    bodies = {f"/feed-{i}.xml": feed_body(i) for i in range(feeds)}
    etags = {path: '"' + hashlib.sha1(body).hexdigest()[:16] + '"' for path, body in bodies.items()}
    stats = {"bytes": 0, "ok": 0, "not_modified": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path, etag = _request(head)
                if path == STATS_PATH:
                    payload = json.dumps(stats).encode()
                    stats.update(bytes=0, ok=0, not_modified=0)
                    writer.write(_response(200, payload, None))
                    await writer.drain()
                    continue
                await asyncio.sleep(latency)
                if etag is not None and etag == etags.get(path):
                    data, stats["not_modified"] = (
                        _response(304, b"", etag),
                        stats["not_modified"] + 1,
                    )
                else:
                    data, stats["ok"] = (
                        _response(200, bodies.get(path, b""), etags.get(path)),
                        stats["ok"] + 1,
                    )
                stats["bytes"] += len(data)
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, host=hosts, port=port, backlog=2048)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _request(head: bytes) -> tuple[str, str | None]:
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    etag = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "if-none-match":
            etag = value.strip()
    return path, etag


def _response(status: int, body: bytes, etag: str | None) -> bytes:
    reason = {200: "OK", 304: "Not Modified"}[status]
    headers = [f"HTTP/1.1 {status} {reason}"]
    if etag:
        headers.append(f"ETag: {etag}")
    if status == 200:
        headers += [
            "Content-Type: application/rss+xml; charset=utf-8",
            f"Content-Length: {len(body)}",
        ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


# --- the clients -------------------------------------------------------------------------


def _proc_cpu(stat: str) -> float:
    """utime + stime + cutime + cstime (the last two: reaped children) from /proc/PID/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(exclude: frozenset[int] = frozenset()) -> float:
    """CPU seconds of this process and all its descendants, living or reaped (parse workers
    are children of the multiprocessing fork server), leaving out the `exclude` subtrees."""
    parents, stats = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        stats[int(entry)] = stat
    total = 0.0
    for pid, stat in stats.items():
        ancestor: int | None = pid
        while ancestor is not None and ancestor not in exclude:
            if ancestor == os.getpid():
                total += _proc_cpu(stat)
                break
            ancestor = parents.get(ancestor)
    return total


def run_cycle(
    feeds: list[Feed], settings: Settings, store: MemoryStateStore, server: int
) -> tuple[float, float, float, CycleReport]:
    """(wall seconds, poller process CPU, parse workers' CPU, report) of one `--once` cycle."""
    published: list[RawStory] = []
    poller = FeedPoller(feeds, settings, publish=published.extend, store=store)
    started, own, tree = time.perf_counter(), _own_cpu(), tree_cpu(frozenset({server}))
    report = asyncio.run(poller.run(threading.Event(), once=True))
    own = _own_cpu() - own
    tree = tree_cpu(frozenset({server})) - tree
    return time.perf_counter() - started, own, max(0.0, tree - own), report


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sequential(urls: list[str]) -> float:
    started = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        for url in urls:
            response = client.get(url)
            parsed = feedparser.parse(response.content, response_headers={"content-location": url})
            assert len(parsed.entries) == ENTRIES_PER_FEED
    return time.perf_counter() - started


def server_stats(host: str, port: int) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"http://{host}:{port}{STATS_PATH}").json()
    return stats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--baseline-feeds", type=int, default=None)
    parser.add_argument("--parse-workers", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="first cycles run; the median counts")
    args = parser.parse_args()

    hosts = [f"127.0.1.{i + 1}" for i in range(args.hosts)]
    port = free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(
        target=serve, args=(hosts, port, args.feeds, args.latency, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    try:
        feeds = [
            Feed(url=f"http://{hosts[i % args.hosts]}:{port}/feed-{i}.xml", name=f"feed-{i}")
            for i in range(args.feeds)
        ]
        settings = Settings(
            http=HttpSettings(allow_private_networks=True),
            poller=PollerSettings(parse_workers=args.parse_workers),
        )
        server_stats(hosts[0], port)  # reset

        load = os.getloadavg()[0]
        assert server.pid is not None
        firsts = []
        for _ in range(args.repeat):  # each from empty state: every feed new, every body parsed
            store = MemoryStateStore()
            firsts.append(run_cycle(feeds, settings, store, server.pid))
            first_stats = server_stats(hosts[0], port)
        first, first_own, first_workers, report = sorted(firsts, key=lambda c: c[0])[
            len(firsts) // 2
        ]
        second, second_own, second_workers, report2 = run_cycle(feeds, settings, store, server.pid)
        second_stats = server_stats(hosts[0], port)

        sample = args.baseline_feeds or args.feeds
        baseline = sequential([f.url for f in feeds[:sample]]) * args.feeds / sample
        server_stats(hosts[0], port)

        workers = args.parse_workers or os.cpu_count()
        print(
            f"feeds: {args.feeds} on {args.hosts} hosts, {args.latency * 1000:.0f} ms latency, "
            f"{ENTRIES_PER_FEED} entries each; parse workers {workers}; "
            f"{os.cpu_count()} cores, load average {load:.1f} at start"
        )
        walls = ", ".join(f"{c[0]:.2f}" for c in firsts)
        print(
            f"cycle 1, median of {len(firsts)} ({walls} s): {first:.2f} s wall; CPU {first_own:.2f} s poller process + "
            f"{first_workers:.2f} s parse workers; "
            f"polls {dict(report.polls)}; new stories {report.stories}; "
            f"{first_stats['bytes']:,} bytes served"
        )
        scaled = "" if sample == args.feeds else f" (timed on {sample} feeds, scaled)"
        print(
            f"sequential fetch-and-parse: {baseline:.2f} s{scaled}; "
            f"speed-up {baseline / first:.1f}x"
        )
        print(
            f"cycle 2 (nothing changed): {second:.2f} s wall; CPU {second_own:.2f} s poller "
            f"process + {second_workers:.2f} s parse workers; "
            f"polls {dict(report2.polls)}; new stories {report2.stories}; "
            f"{second_stats['bytes']:,} bytes served "
            f"({second_stats['not_modified']} x 304, {second_stats['ok']} x 200)"
        )
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
