"""`newsmon enrich`: the extractor's enrichment over JSON lines, with no broker and no network.

Each input line is a JSON object with `url` and `html`, and optionally `title`,
`summary`, `language` and `tags`; each valid line gives one EnrichedStory JSON
line on the output, in input order. A line that cannot be read gets one error
line on the error stream naming its line number, and the rest go on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from pipeline.errors import DecodeError
from pipeline.extractor.enrich import Enricher, FetchedPage
from pipeline.models import RawStory, story_id_for, utcnow

OFFLINE_FEED = "stdin"


def parse_line(line: str) -> tuple[RawStory, FetchedPage]:
    """A story and its page from one input line; `DecodeError` says what is wrong with it."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise DecodeError(f"expected a JSON object, got {type(data).__name__}")
    url = _required(data, "url").strip()
    if not url:
        raise DecodeError("'url' is empty")
    html = _required(data, "html")
    now = utcnow()
    story = RawStory(
        id=story_id_for(url),
        url=url,
        title=_string(data, "title").strip(),
        summary=_string(data, "summary").strip(),
        published=now,
        first_seen=now,
        feed=OFFLINE_FEED,
        tags=_tags(data),
        language=_string(data, "language").strip() or None,
    )
    return story, FetchedPage(html, "text/html", url)


def _required(data: dict[str, Any], key: str) -> str:
    if key not in data:
        raise DecodeError(f"'{key}' is missing")
    return _string(data, key)


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _tags(data: dict[str, Any]) -> list[str]:
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DecodeError("'tags' must be a list of strings")
    return tags


def enrich_stream(
    enricher: Enricher, lines: Iterable[str], out: TextIO, errors: TextIO, *, batch_size: int
) -> tuple[int, int]:
    """Enrich every valid line, batch by batch; returns (lines enriched, lines rejected)."""
    enriched = rejected = 0
    batch: list[tuple[RawStory, FetchedPage]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append(parse_line(line))
        except DecodeError as exc:
            print(f"newsmon enrich: line {number}: {exc}", file=errors, flush=True)
            rejected += 1
            continue
        if len(batch) >= batch_size:
            enriched += _write_batch(enricher, batch, out)
            batch = []
    return enriched + _write_batch(enricher, batch, out), rejected


def _write_batch(enricher: Enricher, batch: list[tuple[RawStory, FetchedPage]], out: TextIO) -> int:
    if not batch:
        return 0
    for story in enricher.enrich_batch(batch):
        out.write(story.model_dump_json() + "\n")
    out.flush()
    return len(batch)
