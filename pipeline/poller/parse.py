"""Feed bytes -> entries: feedparser on bytes (never a URL), then plain Python values.

A malformed feed that still yields entries is accepted (its problem is kept in
`FeedDocument.malformed` for the log); one that yields nothing raises
`FeedError`, so only that feed is marked in error.
"""

from __future__ import annotations

import calendar
import html
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import feedparser

from pipeline.errors import FeedError

MAX_ENTRIES = 1000
"""Entries read from one document (feeds list newest first); the rest are ignored."""

_BLOCK_TAGS = frozenset(
    {"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
     "blockquote", "pre", "section", "article", "header", "footer", "figure", "figcaption", "hr"}
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"script", "style", "template", "noscript", "iframe", "object"})
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
_NEEDS_PARSER = re.compile(
    r"<[!?]|<(?:" + "|".join(sorted(_SKIPPED_TAGS)) + r")(?![A-Za-z0-9])", re.IGNORECASE
)
"""Comments, CDATA, declarations and skipped elements: left to HTMLParser."""


@dataclass(frozen=True)
class Entry:
    link: str | None
    guid: str | None
    title: str
    summary: str
    published: float | None
    """Unix seconds (UTC) as the feed states it; sanity checks happen in normalise."""
    categories: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True)
class FeedDocument:
    entries: tuple[Entry, ...]
    title: str = ""
    link: str | None = None
    language: str | None = None
    ttl_seconds: float | None = None
    malformed: str | None = None
    """Why feedparser complained, when it recovered entries anyway."""


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed."""
    if "<" not in markup:
        text = html.unescape(markup) if "&" in markup else markup
    elif _NEEDS_PARSER.search(markup):
        text = _parsed_text(markup)
    else:  # plain tags only, the usual summary: a regex does what the parser would, 5x faster
        stripped = _TAG.sub(_tag_gap, markup)
        # A "<" left over is markup the regex could not read (an unclosed quote...).
        text = _parsed_text(markup) if "<" in stripped else html.unescape(stripped)
    return _SPACES.sub(" ", text).strip()


def _parsed_text(markup: str) -> str:
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    return "".join(collector.parts)


def _tag_gap(match: re.Match[str]) -> str:
    return " " if match.group(1).lower() in _BLOCK_TAGS else ""


def _text(value: Any, detail: Any) -> str:
    """feedparser gives text/plain values as is, text/html values as (sanitised) markup."""
    if not isinstance(value, str):
        return ""
    kind = detail.get("type", "text/html") if isinstance(detail, dict) else "text/html"
    if "html" in kind:
        return html_to_text(value)
    return _SPACES.sub(" ", html.unescape(value) if "&" in value else value).strip()


def _timestamp(parsed: Any) -> float | None:
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return float(calendar.timegm(parsed))
    except (OverflowError, ValueError):
        return None


def _guid(raw: Any) -> str | None:
    guid = raw.get("id")
    return guid.strip() or None if isinstance(guid, str) else None


def _link(raw: Any) -> str | None:
    link = raw.get("link")
    if isinstance(link, str) and link.strip():
        return link.strip()
    for alternate in raw.get("links") or ():
        href = alternate.get("href")
        if alternate.get("rel", "alternate") == "alternate" and isinstance(href, str) and href:
            return href.strip()
    return None


def _summary(raw: Any) -> str:
    summary = _text(raw.get("summary"), raw.get("summary_detail"))
    if summary:
        return summary
    for content in raw.get("content") or ():
        text = _text(content.get("value"), content)
        if text:
            return text
    return ""


def _categories(raw: Any) -> tuple[str, ...]:
    terms = (tag.get("term") or tag.get("label") for tag in raw.get("tags") or ())
    return tuple(dict.fromkeys(t.strip() for t in terms if isinstance(t, str) and t.strip()))


def _entry(parsed: Any) -> Entry:
    raw = dict(parsed)  # plain lookups: FeedParserDict's aliasing costs ~1 us per get
    title_detail = raw.get("title_detail")
    return Entry(
        link=_link(raw),
        guid=_guid(raw),
        title=_text(raw.get("title"), title_detail),
        summary=_summary(raw),
        published=_timestamp(raw.get("published_parsed") or raw.get("updated_parsed")),
        categories=_categories(raw),
        language=title_detail.get("language") if isinstance(title_detail, dict) else None,
    )


def _ttl_seconds(channel: Any) -> float | None:
    """RSS `<ttl>` is in minutes."""
    ttl = channel.get("ttl")
    try:
        minutes = float(ttl)
    except (TypeError, ValueError):
        return None
    return minutes * 60 if minutes > 0 else None


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> FeedDocument:
    """Parse a feed document; relative links resolve against `url` (the final, redirected URL)."""
    headers = {}
    if content_type:
        headers["content-type"] = content_type
    if _declares_base(body):
        # Only xml:base needs feedparser to know the document's URL. Without it, feedparser
        # would join every element's base with that URL (a third of its time); normalise
        # resolves relative links against the URL anyway.
        headers["content-location"] = url
    # Sanitising HTML and rewriting URIs inside it is wasted work: only plain text is kept
    # (html_to_text drops every tag, and script/style with their content).
    parsed = feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    entries = tuple(_entry(raw) for raw in parsed.entries[:MAX_ENTRIES])
    problem = _problem(parsed)
    version = parsed.get("version")
    if not entries and (problem or not version):
        raise FeedError(
            f"no entries: {problem or 'not a feed'}",
            reason="malformed" if problem and version else "not_a_feed",
        )
    channel = parsed.feed
    return FeedDocument(
        entries=entries,
        title=_text(channel.get("title"), channel.get("title_detail")),
        link=channel.get("link") if isinstance(channel.get("link"), str) else None,
        language=channel.get("language") if isinstance(channel.get("language"), str) else None,
        ttl_seconds=_ttl_seconds(channel),
        malformed=problem,
    )


def _declares_base(body: bytes) -> bool:
    """True when some element may carry `xml:base` (or a bare `base` attribute)."""
    return b"base=" in body or b"base =" in body


def _problem(parsed: Any) -> str | None:
    """Why the document is not well-formed; a missing or odd Content-Type is no problem."""
    exc = parsed.get("bozo_exception")
    if not parsed.get("bozo") or isinstance(exc, feedparser.NonXMLContentType):
        return None
    return f"{type(exc).__name__}: {exc}" if exc is not None else "malformed"
