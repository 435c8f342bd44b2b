"""The feed list as a user sees it: OPML import into feeds.yaml, and a health table."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml
from pydantic import ValidationError

from pipeline.config import Feed, load_feeds
from pipeline.errors import ConfigError
from pipeline.poller.state import FeedState

_LIST_ITEM = re.compile(r"^feeds:\s*\n(?:\s*#.*\n|\s*\n)*( *)- ", re.MULTILINE)


@dataclass(frozen=True)
class Imported:
    added: list[Feed]
    skipped: list[str]
    """Why each outline was left out (already present, not an http(s) URL...)."""


def opml_outlines(data: bytes) -> Iterator[tuple[dict[str, str], tuple[str, ...]]]:
    """(outline attributes, enclosing category names) of every outline with an `xmlUrl`."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ConfigError([f"not a valid OPML file: {exc}"]) from exc
    body = root.find("body")
    yield from _walk(body if body is not None else root, ())


def _walk(
    node: ElementTree.Element, categories: tuple[str, ...]
) -> Iterator[tuple[dict[str, str], tuple[str, ...]]]:
    for outline in node.findall("outline"):
        attrs = dict(outline.attrib)
        if attrs.get("xmlUrl"):
            yield attrs, categories
        label = (attrs.get("title") or attrs.get("text") or "").strip()
        yield from _walk(outline, (*categories, label) if label else categories)


def feed_from_outline(attrs: dict[str, str], categories: Sequence[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": attrs["xmlUrl"].strip()}
    name = (attrs.get("title") or attrs.get("text") or "").strip()
    if name:
        entry["name"] = name
    extra = [c.strip() for c in attrs.get("category", "").replace("/", ",").split(",")]
    tags = list(dict.fromkeys(t.lower() for t in [*categories, *extra] if t.strip()))
    if tags:
        entry["tags"] = tags
    if attrs.get("language"):
        entry["language"] = attrs["language"]
    return entry


def plan_import(existing: Sequence[Feed], data: bytes) -> Imported:
    """The feeds of an OPML document not yet in `existing`, with names made unique."""
    urls = {f.url for f in existing}
    names = {f.name for f in existing}
    added: list[Feed] = []
    skipped: list[str] = []
    for attrs, categories in opml_outlines(data):
        entry = feed_from_outline(attrs, categories)
        try:
            feed = Feed.model_validate(entry)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            skipped.append(f"{entry['url']}: {reason}")
            continue
        if feed.url in urls:
            skipped.append(f"{feed.url}: already in the feed list")
            continue
        feed = feed.model_copy(update={"name": _unique(feed.name, names)})
        urls.add(feed.url)
        names.add(feed.name)
        added.append(feed)
    return Imported(added, skipped)


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def _as_yaml_entry(feed: Feed) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": feed.url, "name": feed.name}
    if feed.tags:
        entry["tags"] = list(feed.tags)
    if feed.language:
        entry["language"] = feed.language
    if feed.interval is not None:
        entry["interval"] = feed.interval
    if not feed.enabled:
        entry["enabled"] = False
    return entry


def append_feeds(path: Path, feeds: Sequence[Feed]) -> None:
    """Add feeds at the end of feeds.yaml, keeping its comments; checked before it replaces it."""
    if not feeds:
        return
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = yaml.safe_dump([_as_yaml_entry(f) for f in feeds], sort_keys=False, allow_unicode=True)
    match = _LIST_ITEM.search(text)
    if match is None:
        existing = load_feeds(path) if path.exists() else []
        document = {"feeds": [_as_yaml_entry(f) for f in [*existing, *feeds]]}
        updated = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        indent = match.group(1)
        lines = [indent + line if line else line for line in block.splitlines()]
        updated = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    before = len(load_feeds(path)) if path.exists() else 0
    _replace_checked(path, updated, expected=before + len(feeds))


def _replace_checked(path: Path, text: str, *, expected: int) -> None:
    temporary = path.with_name(f".{path.name}.import")
    temporary.write_text(text, encoding="utf-8")
    try:
        count = len(load_feeds(temporary))
        if count != expected:
            raise ConfigError([f"{path}: appending would give {count} feeds, not {expected}"])
    except ConfigError:
        temporary.unlink()
        raise
    os.replace(temporary, path)


# --- status -----------------------------------------------------------------------------------


def _ago(stamp: float | None, now: float) -> str:
    return "never" if stamp is None else f"{_span(now - stamp)} ago"


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def status_rows(feeds: Sequence[Feed], states: dict[str, FeedState], now: float) -> list[list[str]]:
    rows = [["FEED", "LAST SUCCESS", "ERRORS", "NEXT POLL", "ITEMS SEEN", "LAST ERROR"]]
    for feed in feeds:
        state = states.get(feed.name)
        if state is None:
            rows.append([feed.name, "never", "0", "now", "0", "-"])
            continue
        upcoming = state.next_poll - now
        rows.append([
            feed.name + ("" if feed.enabled else " (disabled)"),
            _ago(state.last_success, now),
            str(state.consecutive_errors),
            f"in {_span(upcoming)}" if upcoming > 0 else "now",
            str(state.items_seen),
            f"{state.last_error} ({_ago(state.last_error_at, now)})" if state.last_error else "-",
        ])  # fmt: skip
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
