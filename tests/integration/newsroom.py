"""A news site on 127.0.0.1 for the end-to-end tests: one RSS feed, its pages, a syndicated copy.

The seed story (../shared/corpora/seed-story.txt) sits in a page with navigation, a
trending sidebar and a comment form. The feed also carries the same story syndicated
under another URL, a story about Nikola Tesla the inventor, and an unrelated story:
exactly three alerts (tesla, qin-gang, unbundling) must come out of it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import NamedTuple

from seed import seed_page

from pipeline.demo.server import serve_on_loopback

ROOT = Path(__file__).resolve().parents[2]
SEED_RULES = {"tesla", "qin-gang", "unbundling"}

INVENTOR = """The Nikola Tesla Museum in Belgrade opened a new hall this week about the inventor's
experiments with wireless power, with letters, patents and a working replica of one of his coils.
Curators said the collection traces how Nikola Tesla moved from alternating current motors to
ideas about sending electricity through the air, work that was little understood in his lifetime.
Visitors can watch a demonstration every hour in which the replica lights lamps without wires."""

HARBOUR = """Dock workers at the port of Rotterdam returned to work on Friday after their union
accepted a new pay agreement, ending a four-day strike that left container ships waiting at anchor.
The deal raises wages by six percent over two years and limits night shifts, the union said.
Port operators said it would take several days to clear the backlog of containers on the quays."""


def plain_page(title: str, text: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n") if p)
    return (
        f"<html lang='en'><head><title>{html.escape(title)}</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/tesla'>Tesla news</a></nav>"
        f"<article><h1>{html.escape(title)}</h1>{paragraphs}</article>"
        f"<aside class='trending'><h2>Trending</h2><a href='/q'>Qin Gang speaks</a></aside>"
        f"</body></html>"
    )


class Story(NamedTuple):
    """A page of the site and its feed entry."""

    title: str
    page: str
    summary: str | None = None  # the feed's <description>; the title when None


def seed_stories(shared: Path) -> dict[str, Story]:
    """The seed story, its syndicated copy, the inventor story and the unrelated one."""
    return {
        "/world/musk-qin": Story("Elon Musk meets Chinese foreign minister", seed_page(shared)),
        "/partners/musk-qin-syndicated": Story(
            "Musk meets China's foreign minister (syndicated)", seed_page(shared)
        ),
        "/culture/tesla-museum": Story(
            "Belgrade museum honours Nikola Tesla",
            plain_page("Belgrade museum honours Nikola Tesla", INVENTOR),
        ),
        "/business/rotterdam": Story(
            "Rotterdam dock strike ends", plain_page("Rotterdam dock strike ends", HARBOUR)
        ),
    }


class Newsroom:
    """Serves /feed.xml and the pages it links to, on a free port of 127.0.0.1."""

    def __init__(
        self,
        shared: Path | None = None,
        *,
        listed: set[str] | None = None,
        stories: Mapping[str, Story] | None = None,
    ) -> None:
        """The seed site (from `shared`), or the given `stories` (path -> Story) instead."""
        if stories is None:
            if shared is None:
                raise ValueError("Newsroom needs the shared folder (the seed site) or stories")
            stories = seed_stories(shared)
        self.pages = {path: story.page for path, story in stories.items()}
        self.titles = {path: story.title for path, story in stories.items()}
        self.summaries = {
            path: story.summary for path, story in stories.items() if story.summary is not None
        }
        """A story's feed <description>; its title where it has none."""
        self.listed = set(self.titles) if listed is None else listed
        """Paths the feed lists now; `release` adds one (a story published later)."""
        self.server = serve_on_loopback(self.route, "newsroom")

    def route(self, path: str) -> tuple[int, str, str]:
        if path == "/feed.xml":
            return 200, "application/rss+xml", self.feed()
        if path in self.pages:
            return 200, "text/html; charset=utf-8", self.pages[path]
        return 404, "text/plain", "not found"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def feed_url(self) -> str:
        return f"{self.base}/feed.xml"

    def feed(self) -> str:
        published = format_datetime(datetime(2023, 5, 30, 10, 0, tzinfo=UTC))
        items = "".join(
            f"<item><title>{html.escape(title)}</title><link>{self.base}{path}</link>"
            f"<pubDate>{published}</pubDate>"
            f"<description>{html.escape(self.summaries.get(path, title))}</description></item>"
            for path, title in self.titles.items()
            if path in self.listed
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Newsroom</title><link>{self.base}/</link><description>e2e</description>"
            f"{items}</channel></rss>"
        )

    def release(self, *paths: str) -> None:
        self.listed = self.listed | set(paths)

    def write_feeds_file(self, folder: Path, interval: float | None = None) -> Path:
        path = folder / "feeds.yaml"
        every = "" if interval is None else f"    interval: {interval}\n"
        path.write_text(
            f"feeds:\n  - url: {self.feed_url}\n    name: newsroom\n{every}", encoding="utf-8"
        )
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
