"""Stories and rules for the rules-stage tests, built in one line each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seed import enriched_seed_story

from pipeline.config import Rule
from pipeline.models import EnrichedStory, Entity, Mention, TextField, TopicScore, story_id_for

TESTDATA = Path(__file__).resolve().parent.parent / "testdata" / "rules"
WHEN = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def rule(rule_id: str, *terms: str | dict[str, Any], **fields: Any) -> Rule:
    return Rule.model_validate({"id": rule_id, "terms": list(terms), **fields})


def entity(label: str, field: TextField, text: str, name: str) -> Entity:
    """An entity whose one mention is the first occurrence of `name` in `text`."""
    start = text.index(name)
    mention = Mention(field=field, start=start, end=start + len(name), text=name)
    return Entity(text=name, label=label, count=1, first_position=start, mentions=[mention])


def story(
    text: str = "",
    *,
    title: str = "",
    summary: str = "",
    url: str = "https://news.example.com/a",
    feed: str = "example",
    entities: list[tuple[str, str]] | None = None,
    topics: list[str] | None = None,
) -> EnrichedStory:
    """A story; `entities` are (label, name) pairs, each a mention of its first place in text."""
    found = [entity(label, "text", text, name) for label, name in entities or []]
    return EnrichedStory(
        id=story_id_for(url),
        url=url,
        title=title,
        summary=summary,
        text=text,
        text_source="full_text",
        published=WHEN,
        first_seen=WHEN,
        enriched_at=WHEN,
        feed=feed,
        entities=found,
        topics=[TopicScore(topic=t, score=0.9) for t in topics or []],
    )


def seed_story() -> EnrichedStory:
    return enriched_seed_story()
