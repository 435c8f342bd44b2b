"""A small news site on 127.0.0.1: two feeds and the article pages they link to.

The stories were written for this project. One is built around the seed story of
newsmon (Elon Musk meeting Qin Gang, "opposed to unbundling") and sits in a page with
navigation, a trending sidebar and a comment form that name the watched terms too, so
the demo shows that only story text raises alerts. Another is about Nikola Tesla (not
the company), and a third is syndicated under a second URL (one alert, not two).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

DATA = resources.files("pipeline.demo") / "data"


Route = Callable[[str], tuple[int, str, str]]
"""A site: path (query string dropped) -> (status, content type, body)."""


def serve_on_loopback(route: Route, name: str) -> ThreadingHTTPServer:
    """Serve `route` on a free port of 127.0.0.1 from a daemon thread, without access logs
    (the demo prints alerts; the end-to-end tests' newsroom serves its pages the same way).
    Stop it with `shutdown()` and `server_close()`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = route(self.path.split("?")[0])
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a served page is not news."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


@dataclass(frozen=True)
class DemoStory:
    slug: str
    title: str
    author: str
    published: datetime
    paragraphs: list[str]

    @property
    def summary(self) -> str:
        return self.paragraphs[0][:200]


def load_story(slug: str) -> DemoStory:
    text = (DATA / "pages" / f"{slug}.txt").read_text(encoding="utf-8")
    header, _, body = text.partition("\n\n")
    fields = dict(line.split(": ", 1) for line in header.splitlines())
    return DemoStory(
        slug=slug,
        title=fields["title"],
        author=fields["author"],
        published=datetime.fromisoformat(fields["published"].replace("Z", "+00:00")),
        paragraphs=[p.strip() for p in body.split("\n\n") if p.strip()],
    )


def render_page(story: DemoStory) -> str:
    template = (DATA / "page_template.html").read_text(encoding="utf-8")
    body = "\n".join(f"    <p>{html.escape(p)}</p>" for p in story.paragraphs)
    return template.format(
        title=html.escape(story.title),
        author=html.escape(story.author),
        published=story.published.isoformat(),
        body=body,
    )


def render_rss(base: str, title: str, items: list[tuple[str, DemoStory]]) -> str:
    entries = "".join(
        f"<item><title>{html.escape(s.title)}</title><link>{base}{path}</link>"
        f"<guid>{base}{path}</guid><pubDate>{format_datetime(s.published)}</pubDate>"
        f"<description>{html.escape(s.summary)}</description></item>"
        for path, s in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{html.escape(title)}</title><link>{base}/</link>"
        f"<description>newsmon demo feed</description>{entries}</channel></rss>"
    )


def render_atom(base: str, title: str, items: list[tuple[str, DemoStory]]) -> str:
    entries = "".join(
        f'<entry><title>{html.escape(s.title)}</title><link href="{base}{path}"/>'
        f"<id>{base}{path}</id><updated>{s.published.isoformat()}</updated>"
        f"<summary>{html.escape(s.summary)}</summary></entry>"
        for path, s in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{html.escape(title)}</title><id>{base}/</id>"
        f"<updated>2026-11-28T09:00:00+00:00</updated>{entries}</feed>"
    )


class DemoSite:
    """Routes of the demo site; `start()` serves them on a free port of 127.0.0.1."""

    FEEDS = {
        "/feeds/world.xml": ("Demo Ledger: World", "rss", ["musk-meets-qin", "port-strike"]),
        "/feeds/culture.atom": ("Demo Ledger: Culture", "atom", ["nikola-tesla-museum"]),
    }
    SYNDICATED = "musk-meets-qin"

    def __init__(self) -> None:
        self.stories = {
            slug: load_story(slug)
            for slug in ("musk-meets-qin", "port-strike", "nikola-tesla-museum")
        }
        self.server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None, "start() the site first"
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def feed_urls(self) -> dict[str, str]:
        return {path.rsplit("/", 1)[1].split(".")[0]: self.base + path for path in self.FEEDS}

    def route(self, path: str) -> tuple[int, str, str]:
        if path in self.FEEDS:
            return self._feed(path)
        kind, _, slug = path.strip("/").partition("/")
        if kind in ("story", "syndicated") and slug in self.stories:
            return 200, "text/html; charset=utf-8", render_page(self.stories[slug])
        return 404, "text/plain", "not found\n"

    def _feed(self, path: str) -> tuple[int, str, str]:
        title, kind, slugs = self.FEEDS[path]
        items = [(f"/story/{slug}", self.stories[slug]) for slug in slugs]
        if kind == "atom":
            syndicated = self.stories[self.SYNDICATED]
            items.append((f"/syndicated/{syndicated.slug}?utm_source=demo", syndicated))
            return 200, "application/atom+xml", render_atom(self.base, title, items)
        return 200, "application/rss+xml", render_rss(self.base, title, items)

    def start(self) -> DemoSite:
        self.server = serve_on_loopback(self.route, "demo-site")
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
