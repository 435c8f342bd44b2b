"""The rule editor's "test" button: what a rule would have raised over the stored stories. Pure.

It runs the rules stage's own matcher (`compile_rules`, `match_story`, `matched_terms`) on
the history, so "would have fired" means what the stage would decide, less the ledger's
decisions over time (one alert per story and rule, near-duplicates, throttling), like
`newsmon match`. With the rule as it is in force now, it also says which stories the edit
adds and which it drops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.config import Rule
from pipeline.models import EnrichedStory
from pipeline.rules.compile import compile_rules
from pipeline.rules.match import match_story, matched_terms

SAMPLES = 20


@dataclass(frozen=True)
class Sample:
    story_id: str
    title: str
    feed: str
    snippet: str


@dataclass
class RuleTrial:
    stories: int
    fired: int = 0
    samples: list[Sample] = field(default_factory=list)
    added: int = 0
    """Stories the edited rule fires on and the rule in force does not."""
    dropped: list[Sample] = field(default_factory=list)
    """Stories the rule in force fires on and the edited one does not."""
    compared: bool = False


def try_rule(
    rule: Rule, current: Rule | None, stories: Sequence[EnrichedStory], snippet_chars: int
) -> RuleTrial:
    """`stories` newest first; samples are the newest matches."""
    edited = compile_rules([rule.model_copy(update={"enabled": True})])
    before = compile_rules([current]) if current is not None else None
    result = RuleTrial(stories=len(stories), compared=before is not None)
    for story in stories:
        matches = match_story(story, edited)
        was = bool(match_story(story, before)) if before is not None else False
        if matches:
            result.fired += 1
            result.added += 0 if was else 1
            if len(result.samples) < SAMPLES:
                terms = matched_terms(matches[0], story, snippet_chars)
                snippet = terms[0].snippet if terms else ""
                result.samples.append(Sample(story.id, story.title, story.feed, snippet))
        elif was and len(result.dropped) < SAMPLES:
            result.dropped.append(Sample(story.id, story.title, story.feed, ""))
    if before is None:
        result.added = 0
    return result
