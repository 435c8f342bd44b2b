"""Entry -> RawStory: canonical link, stable id, plain text, sane UTC time.

The id is keyed on the canonical link first, so a story re-listed with a new
guid or an edited title, or carried by a second feed, keeps its id; the guid is
used only when an entry has no link (scoped to its feed, since guids are often
just counters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

from courlan import normalize_url

from pipeline.config import Feed
from pipeline.errors import FeedError, Skip
from pipeline.models import RawStory, story_id_for
from pipeline.poller.parse import Entry, FeedDocument, parse_feed

EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
MAX_TITLE_CHARS = 1000
MAX_SUMMARY_CHARS = 10_000


def canonical_url(link: str, base: str) -> str | None:
    """Absolute http(s) link without fragment and tracking parameters (`utm_*`, `fbclid`...)."""
    link = link.strip()
    absolute = link if link.startswith(("https://", "http://")) else urljoin(base, link)
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        return str(normalize_url(parts._replace(fragment=""), strict=False))
    except ValueError:
        return None


def story_key(entry: Entry, feed_name: str, base: str) -> tuple[str, str | None]:
    """(dedup key, canonical link): the link, else the guid, else the text; `Skip` if none."""
    link = canonical_url(entry.link, base) if entry.link else None
    if link is None and entry.guid:
        link = canonical_url(entry.guid, base) if "://" in entry.guid else None
    if link is not None:
        return link, link
    if entry.guid:
        return f"guid:{feed_name}:{entry.guid}", None
    if entry.title or entry.summary:
        return f"text:{feed_name}:{entry.title}\x00{entry.summary}", None
    raise Skip("entry has no link, guid, title or summary", reason="no_identity")


def _site_url(document: FeedDocument, base: str) -> str | None:
    """Where a story without a link of its own points: the feed's site."""
    return canonical_url(document.link, base) if document.link else None


def published_time(stamp: float | None, seen_at: datetime) -> datetime:
    """The stated time in UTC, or the first-seen time when absent or absurd."""
    if stamp is None:
        return seen_at
    try:
        published = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return seen_at
    if published < EARLIEST or published > seen_at + FUTURE_TOLERANCE:
        return seen_at
    return published


def language_code(*candidates: str | None) -> str | None:
    """'en-US' -> 'en': the primary subtag of the first language given."""
    for candidate in candidates:
        if candidate and candidate.strip():
            return candidate.strip().replace("_", "-").split("-")[0].lower()
    return None


def normalise_entry(
    entry: Entry, feed: Feed, document: FeedDocument, *, base: str, seen_at: datetime
) -> RawStory:
    key, link = story_key(entry, feed.name, base)
    return RawStory(
        id=story_id_for(key),
        url=link or _site_url(document, base) or feed.url,
        title=entry.title[:MAX_TITLE_CHARS],
        summary=entry.summary[:MAX_SUMMARY_CHARS],
        published=published_time(entry.published, seen_at),
        first_seen=seen_at,
        feed=feed.name,
        feed_url=feed.url,
        guid=entry.guid,
        tags=list(dict.fromkeys([*feed.tags, *entry.categories])),
        language=language_code(feed.language, entry.language, document.language),
    )


@dataclass(frozen=True)
class FeedReading:
    """What one fetched document yields: its stories (in feed order) and scheduling hints."""

    stories: tuple[RawStory, ...]
    published: tuple[float, ...]
    ttl_seconds: float | None
    malformed: str | None
    skipped: int


def read_feed(
    body: bytes, *, feed: Feed, url: str, content_type: str | None, seen_at: datetime
) -> FeedReading:
    """Bytes -> stories. A module-level pure function, so a process pool can run it."""
    document = parse_feed(body, url=url, content_type=content_type)
    stories: dict[str, RawStory] = {}
    skipped = 0
    for entry in document.entries:
        try:
            story = normalise_entry(entry, feed, document, base=url, seen_at=seen_at)
        except Skip:
            skipped += 1
            continue
        stories.setdefault(story.id, story)
    if skipped and not stories:
        raise FeedError(f"{skipped} entries, none identifiable", reason="no_entries")
    published = tuple(e.published for e in document.entries if e.published is not None)
    return FeedReading(
        tuple(stories.values()), published, document.ttl_seconds, document.malformed, skipped
    )
