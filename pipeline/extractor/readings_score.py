"""Scoring entity-typed rules on a labelled set of passages, and tuning the reader's weights.

Each passage is a short news text (a title, a feed summary or both) that names an
ambiguous name ("Ford", "Jordan", "Georgia") in one true reading: the company, the
person or the place. It goes through the stage as a story whose page could not be
had (title and summary only, the short texts where the small model is weakest), and
three rules watch its name: one with `entity_types: [ORG]`, one `[PERSON]`, one
`[GPE, LOC]`. The rule of the true reading should fire and the other two should not.

Three ways of labelling are scored on the same NER output: `raw` (one entity per NER
span, with the model's label), `folded` (the folding of short mentions into full names
alone, as before names were read) and `read` (`read_story` and, in the rules stage,
reading of unlabelled names in short texts). `tune` fits the reader's weights by
coordinate descent; `cross_validate` tunes on k-1 folds and scores the held-out one.
Used by bench/entity_typing.py and by the test that pins the floors.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Rule
from pipeline.extractor.enrich import Enricher, PageFailed, StoryText, ner_fields
from pipeline.extractor.entities import Found, fold_entities, read_story, recognise
from pipeline.extractor.readings import Weights, name_words
from pipeline.models import EnrichedStory, Entity, Mention, RawStory, TextField, story_id_for
from pipeline.rules.compile import CompiledRules, compile_rules
from pipeline.rules.match import match_story

RULE_TYPES = {"ORG": ["ORG"], "PERSON": ["PERSON"], "GPE": ["GPE", "LOC"]}
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
# Values tried for each weight, around where a reading weighs as much as one cue word.
WEIGHT_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
# The model's own label is never worth nothing: the set holds only names the model often
# gets wrong, while on the other names of real stories it is mostly right.
MODEL_STEPS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class Passage:
    id: str
    name: str
    reading: str  # ORG, PERSON or GPE
    title: str
    summary: str
    split: str  # "tune" or "held_out"


@dataclass(frozen=True)
class Recognised:
    """A passage, the story the stage made of it, and the NER spans of each field."""

    passage: Passage
    story: EnrichedStory
    found: tuple[tuple[TextField, str, tuple[Found, ...]], ...]


@dataclass(frozen=True)
class Counts:
    """Rule outcomes on the passages' names, and (for tuning) the other names relabelled."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    relabelled: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))

    @property
    def precision(self) -> float:
        fired = self.true_positives + self.false_positives
        return self.true_positives / fired if fired else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def errors(self) -> int:
        """What tuning minimises. The set's names are all ambiguous, so on them the model is
        often wrong; on the passages' other names ("Belgrade", "IMF") it is mostly right,
        and a reading that changes one counts as an error too: otherwise tuning would learn
        to ignore the model."""
        return self.false_positives + self.false_negatives + self.relabelled


def _fields(counts: Counts) -> tuple[int, int, int, int]:
    return (
        counts.true_positives, counts.false_positives, counts.false_negatives, counts.relabelled
    )  # fmt: skip


def load_passages(path: Path) -> list[Passage]:
    """The labelled set: one JSON object per line; a bad line names its number."""
    passages = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            passage = Passage(**json.loads(line))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: not a passage: {exc}") from exc
        if passage.reading not in RULE_TYPES:
            raise ValueError(f"{path}:{number}: reading {passage.reading!r} not in {RULE_TYPES}")
        passages.append(passage)
    return passages


def rule_id(name: str, reading: str) -> str:
    return f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}-{reading.lower()}"


def passage_rules(passages: Iterable[Passage]) -> CompiledRules:
    """Three rules per name: its company, its person and its place."""
    names = sorted({p.name for p in passages})
    return compile_rules(
        [
            Rule.model_validate(
                {"id": rule_id(name, reading), "terms": [name], "entity_types": types}
            )
            for name in names
            for reading, types in RULE_TYPES.items()
        ]
    )


def raw_story(passage: Passage) -> RawStory:
    url = f"https://news.example.com/{passage.id}"
    return RawStory(
        id=story_id_for(url), url=url, title=passage.title, summary=passage.summary,
        published=WHEN, first_seen=WHEN, feed="labelled", language="en",
    )  # fmt: skip


def recognise_passages(enricher: Enricher, passages: Sequence[Passage]) -> list[Recognised]:
    """Each passage through the whole stage (a page that could not be had: title and summary),
    and NER's spans per field, so the labelling variants are scored on the same output."""
    raws = [raw_story(p) for p in passages]
    stories = enricher.enrich_batch([(raw, PageFailed("http_4xx")) for raw in raws])
    nlp = enricher.models["en"]
    out = []
    for passage, raw, story in zip(passages, raws, stories, strict=True):
        fields = ner_fields(raw, _chosen(story))
        spans = recognise(nlp, [text for _, text in fields])
        found = tuple((f, t, tuple(s)) for (f, t), s in zip(fields, spans, strict=True))
        out.append(Recognised(passage, story, found))
    return out


def _chosen(story: EnrichedStory) -> StoryText:
    return StoryText(story.title, story.text, story.text_source, story.fallback_reason)


def raw_entities(item: Recognised) -> list[Entity]:
    """One entity per NER span with the model's label: what a rule sees with no folding."""
    return [
        Entity(
            text=span.text,
            label=span.label,
            count=1,
            first_position=span.start,
            mentions=[Mention(field=field, start=span.start, end=span.end, text=span.text)],
        )
        for field, _, spans in item.found
        for span in spans
    ]


def folded_entities(item: Recognised) -> list[Entity]:
    return fold_entities((field, spans) for field, _, spans in item.found)


def read_entities(item: Recognised, weights: Weights) -> list[Entity]:
    return fold_entities(read_story(item.found, weights))


def score(
    items: Iterable[Recognised],
    rules: CompiledRules,
    entities: Callable[[Recognised], list[Entity]],
    readings: Weights | None,
) -> Counts:
    """Counts over the passages' own rules: the true reading's rule should fire, no other."""
    total = Counts()
    for item in items:
        total += _judge_story(item, entities(item), rules, readings)
    return total


def _judge_story(
    item: Recognised, entities: list[Entity], rules: CompiledRules, readings: Weights | None
) -> Counts:
    story = item.story.model_copy(update={"entities": entities})
    fired = {m.rule.id for m in match_story(story, rules, readings=readings)}
    return _judge(item.passage, fired)


def _judge(passage: Passage, fired: set[str]) -> Counts:
    wanted = rule_id(passage.name, passage.reading)
    others = {rule_id(passage.name, r) for r in RULE_TYPES if r != passage.reading}
    hit = wanted in fired
    return Counts(int(hit), len(fired & others), int(not hit))


def score_read(items: Sequence[Recognised], rules: CompiledRules, weights: Weights) -> Counts:
    """Counts of the stage as it is, and how many of the passages' other names it relabelled."""
    total = Counts()
    for item in items:
        read = read_story(item.found, weights)
        total += _judge_story(item, fold_entities(read), rules, weights)
        total += Counts(relabelled=relabelled(item, read))
    return total


def relabelled(item: Recognised, read: Sequence[tuple[TextField, Sequence[Found]]]) -> int:
    """How many spans of the passage's other names the reading gave another label."""
    target = set(name_words(item.passage.name))
    changed = 0
    for (_, _, spans), (_, after) in zip(item.found, read, strict=True):
        for old, new in zip(spans, after, strict=True):
            changed += not target & set(name_words(old.text)) and old.label != new.label
    return changed


def tune(
    items: Sequence[Recognised], rules: CompiledRules, start: Weights, rounds: int = 2
) -> Weights:
    """Coordinate descent: each weight in turn set to the step with the fewest errors (ties
    keep the current value), over `rounds` passes."""
    best, best_errors = start, score_read(items, rules, start).errors
    for _ in range(rounds):
        for field in dataclasses.fields(Weights):
            for value in MODEL_STEPS if field.name == "model" else WEIGHT_STEPS:
                trial = dataclasses.replace(best, **{field.name: value})
                errors = score_read(items, rules, trial).errors
                if errors < best_errors:
                    best, best_errors = trial, errors
    return best


def cross_validate(
    items: Sequence[Recognised], rules: CompiledRules, start: Weights, folds: int
) -> Counts:
    """Tune on k-1 folds, score the held-out fold; the folds' counts added up."""
    total = Counts()
    for k in range(folds):
        train = [item for i, item in enumerate(items) if i % folds != k]
        test = [item for i, item in enumerate(items) if i % folds == k]
        total += score_read(test, rules, tune(train, rules, start))
    return total
