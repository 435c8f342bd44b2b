"""The loopback world of the pipeline latency bench: story pages, a paced feed, a webhook receiver.

Story pages are the real news pages of ../shared/corpora/article-extraction (read at
run time, never copied), each story a distinct variant: paragraphs of sentences drawn
from the corpus's other articles are inserted after the page's longest paragraph, about
40 % of its article's length, so two stories from the same page share well under the
0.8 Jaccard the rules treat as "the same story" and near-duplicate suppression eats no
alert (the article's length counted in the rules' own words: with whitespace words, the
Japanese page got three inserted sentences and its stories were near-duplicates). Pages whose inserted paragraphs do not survive extraction are not used. Every
story's feed title carries the watch term, so each story raises exactly one alert.

The feed releases stories at a paced rate: it lists the newest released stories, a few
seconds' worth, so the poller sees each one on its next poll. The receiver records when
each alert arrived; latency is arrival minus the alert's `first_seen` (the poller's
stamp), both read from this machine's clock.
"""

from __future__ import annotations

import bisect
import gzip
import html
import json
import math
import multiprocessing
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.errors import ExtractionRejected
from pipeline.extractor.text import extract_article
from pipeline.extractor.text_decode import decode_html
from pipeline.rules.tokens import words

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "article-extraction"
WATCH_TERM = "newsmonbench"
MARKER = "zqxinserted"  # only in the validation variant: did the inserted text survive?
INSERTED_SHARE = 0.4  # inserted words per article word
SENTENCES_PER_PARAGRAPH = 3
FEED_SECONDS = 4.0  # the feed lists this many seconds' worth of the newest stories
FEED_MIN_ITEMS = 20
_PARAGRAPH = re.compile(r"<p[\s>].*?</p>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class BasePage:
    """A corpus page cut where the inserted paragraphs go."""

    name: str
    head: str
    tail: str
    article_words: int
    """Words as the rules stage counts them (`pipeline.rules.tokens.words`: each Chinese or
    Japanese character is one), so the inserted share holds for pages without spaces."""
    language: str | None


@dataclass(frozen=True)
class Corpus:
    bases: tuple[BasePage, ...]
    sentences: tuple[str, ...]
    skipped: int


# --- story pages -------------------------------------------------------------------------


def sentence_pool(truth: dict[str, Any]) -> list[str]:
    """Plain sentences of the corpus's hand-checked article bodies."""
    found = (
        s
        for entry in truth.values()
        for s in _SENTENCE_END.split(entry["articleBody"])
        if 60 < len(s) < 300 and s.isascii()
    )
    return sorted(set(found))


def split_page(name: str, raw: bytes) -> tuple[str, str] | None:
    """(before, after) the page's longest paragraph: inside the article body on most pages."""
    text = decode_html(raw)
    paragraphs = list(_PARAGRAPH.finditer(text))
    if not paragraphs:
        return None
    longest = max(paragraphs, key=lambda m: len(_TAG.sub("", m.group())))
    return text[: longest.end()], text[longest.end() :]


def inserted_html(sentences: Sequence[str], marker: str = "") -> str:
    groups = [
        sentences[i : i + SENTENCES_PER_PARAGRAPH]
        for i in range(0, len(sentences), SENTENCES_PER_PARAGRAPH)
    ]
    return "".join(
        f"<p>{html.escape(' '.join(group))}{f' {marker}{n}.' if marker else ''}</p>"
        for n, group in enumerate(groups)
    )


def validated(name: str, raw: bytes, url: str, sentences: Sequence[str]) -> BasePage | None:
    """The page, if extraction keeps every inserted paragraph; None to leave it out."""
    halves = split_page(name, raw)
    if halves is None:
        return None
    head, tail = halves
    probe = random.Random(name).sample(list(sentences), 6)
    try:
        article = extract_article(head + inserted_html(probe, MARKER) + tail, url)
        plain = extract_article(head + tail, url)
    except ExtractionRejected:
        return None
    if not all(f"{MARKER}{n}" in article.text for n in range(2)):
        return None
    return BasePage(name, head, tail, len(words(plain.text)), plain.language)


def load_corpus() -> Corpus:
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    sentences = sentence_pool(truth)
    bases = []
    paths = sorted((CORPUS / "html").glob("*.html.gz"))
    for path in paths:
        name = path.name.removesuffix(".html.gz")
        page = validated(name, gzip.decompress(path.read_bytes()), truth[name]["url"], sentences)
        if page is not None:
            bases.append(page)
    return Corpus(tuple(bases), tuple(sentences), len(paths) - len(bases))


class StoryPages:
    """Story n's page, title and summary: deterministic, so the baseline sees the same pages."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self._mean_words = sum(len(s.split()) for s in corpus.sentences) / len(corpus.sentences)

    def base(self, n: int) -> BasePage:
        return self.corpus.bases[n % len(self.corpus.bases)]

    def inserted(self, n: int) -> list[str]:
        base = self.base(n)
        count = max(3, math.ceil(INSERTED_SHARE * base.article_words / self._mean_words))
        return random.Random(n).sample(self.corpus.sentences, count)

    def page(self, n: int) -> bytes:
        base = self.base(n)
        return (base.head + inserted_html(self.inserted(n)) + base.tail).encode("utf-8")

    def title(self, n: int) -> str:
        return f"Story {n} for {WATCH_TERM}"

    def summary(self, n: int) -> str:
        return self.inserted(n)[0]

    def languages(self) -> set[str]:
        return {b.language for b in self.corpus.bases if b.language}


# --- the page server, in a process of its own ------------------------------------------------


def serve_html(page_for: Callable[[str], bytes], ports: multiprocessing.Queue[int]) -> None:
    """Serve `page_for(path)` as HTML (404 where it is empty) on a free loopback port until
    killed; the port goes to `ports`. Meant for a process of its own, so that serving costs
    the measured processes nothing."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = page_for(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ports.put(server.server_address[1])
    server.serve_forever()


def _serve_pages(corpus: Corpus, ports: multiprocessing.Queue[int]) -> None:
    pages = StoryPages(corpus)

    def page_for(path: str) -> bytes:
        _, _, number = path.split("?", maxsplit=1)[0].rpartition("/story/")
        return pages.page(int(number)) if number.isdigit() else b""

    serve_html(page_for, ports)


@dataclass(frozen=True)
class PageServer:
    site: str
    pid: int


@contextmanager
def page_server(corpus: Corpus) -> Iterator[PageServer]:
    """Story pages at <site>/story/<n>, served by a child process (terminated on exit)."""
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue[int] = context.Queue()
    process = context.Process(target=_serve_pages, args=(corpus, ports), daemon=True)
    process.start()
    try:
        port = ports.get(timeout=60)
        assert process.pid is not None
        yield PageServer(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.join(timeout=10)


# --- the paced feed ------------------------------------------------------------------------------


class Releases:
    """When each story appears in the feed; story numbers only ever grow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._first = 0  # story number of _times[0]

    def start_at(self, first: int) -> None:
        with self._lock:
            self._first = first
            self._times.clear()

    def plan(self, rate: float, seconds: float, start: float) -> list[tuple[int, float]]:
        """Release `rate` stories a second for `seconds` from `start`; (story, release time)."""
        with self._lock:
            n0 = self._first + len(self._times)
            times = [start + i / rate for i in range(max(1, round(rate * seconds)))]
            self._times.extend(times)
        return [(n0 + i, t) for i, t in enumerate(times)]

    def next_number(self) -> int:
        with self._lock:
            return self._first + len(self._times)

    def cancel_after(self, moment: float) -> int:
        """Stories not yet released by `moment` never will be; returns how many were dropped."""
        with self._lock:
            keep = bisect.bisect_right(self._times, moment)
            dropped = len(self._times) - keep
            del self._times[keep:]
        return dropped

    def newest(self, now: float, limit: int) -> list[tuple[int, float]]:
        with self._lock:
            released = bisect.bisect_right(self._times, now)
            start = max(0, released - limit)
            return [(self._first + i, self._times[i]) for i in range(released - 1, start - 1, -1)]

    def rate_now(self, now: float) -> float:
        """Stories released in the last second: sizes the feed to a few seconds' worth."""
        with self._lock:
            return float(
                bisect.bisect_right(self._times, now) - bisect.bisect_right(self._times, now - 1)
            )


def rss(items: Sequence[tuple[int, float]], pages: StoryPages, site: str) -> bytes:
    entries = "".join(
        f"<item><title>{html.escape(pages.title(n))}</title>"
        f"<link>{site}/story/{n}</link><guid>{site}/story/{n}</guid>"
        f"<pubDate>{format_datetime(datetime.fromtimestamp(t).astimezone())}</pubDate>"
        f"<description>{html.escape(pages.summary(n))}</description></item>"
        for n, t in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Bench wire</title><link>{site}/</link><description>paced stories</description>"
        f"<language>en</language>{entries}</channel></rss>"
    ).encode()


class FeedServer:
    """Serves /feed.xml: the newest released stories, newest first."""

    def __init__(self, releases: Releases, pages: StoryPages, site: str) -> None:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = feed.body()
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.releases, self.pages, self.site = releases, pages, site
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="feed", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/feed.xml"

    def body(self) -> bytes:
        now = time.time()
        limit = max(FEED_MIN_ITEMS, math.ceil(self.releases.rate_now(now) * FEED_SECONDS))
        return rss(self.releases.newest(now, limit), self.pages, self.site)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    first_seen: float
    at: float

    @property
    def latency(self) -> float:
        return self.at - self.first_seen


class Receiver:
    """Records each alert's arrival by story number; counts repeats and strays."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: dict[int, Arrival] = {}
        self.repeats = 0
        self.strays = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.record(body, at)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def record(self, body: bytes, at: float) -> None:
        alert = json.loads(body)
        _, _, number = str(alert.get("story", {}).get("url", "")).rpartition("/story/")
        first_seen = datetime.fromisoformat(alert["first_seen"]).timestamp()
        with self.lock:
            if not number.isdigit():
                self.strays += 1
            elif int(number) in self.arrivals:
                self.repeats += 1
            else:
                self.arrivals[int(number)] = Arrival(first_seen, at)

    def extra(self) -> int:
        """Alerts so far that should not have come: repeats and strays."""
        with self.lock:
            return self.repeats + self.strays

    def get(self, n: int) -> Arrival | None:
        with self.lock:
            return self.arrivals.get(n)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
