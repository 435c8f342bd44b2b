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
reading of unlabelled names in short texts). `train` fits the reader's weights by a
conditional logistic regression over the evidence of each kind (the features `tally`
gives with one weight at a time); `cross_validate` fits on k-1 folds and scores the
held-out one. Used by bench/entity_typing.py and by the test that pins the floors; not
part of the installed package.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import entity_readings
from pipeline.config import Rule
from pipeline.entity_readings import (
    READINGS,
    Weights,
    is_part_of,
    name_words,
    reading_of,
    tally,
)
from pipeline.extractor import entities as entities_module
from pipeline.extractor.enrich import Enricher, PageFailed, StoryText, ner_fields
from pipeline.extractor.entities import Found, fold_entities, read_story, recognise
from pipeline.models import EnrichedStory, Entity, Mention, RawStory, TextField, story_id_for
from pipeline.rules import match as match_module
from pipeline.rules.compile import CompiledRules, compile_rules
from pipeline.rules.match import match_story

RULE_TYPES = {"ORG": ["ORG"], "PERSON": ["PERSON"], "GPE": ["GPE", "LOC"]}
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


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


@dataclass(frozen=True)
class Decision:
    """One call of the reader while a passage went through both stages: each reading's
    evidence of each kind (the features), the model's reading, and what it should be."""

    features: dict[str, list[float]]  # reading -> one value per Weights field
    preferred: str | None
    truth: str
    weight: float  # the passage's own name counts fully; its other names less


KINDS = [field.name for field in dataclasses.fields(Weights)]
# The passages' other names are mostly labelled right by the model: each is an example
# that the model's label stands, weighted less than the name the passage is about.
OTHER_NAME_WEIGHT = 0.3


@contextmanager
def recording(
    calls: list[tuple[tuple[str, ...], tuple[Any, ...], dict[str, Any]]],
) -> Iterator[None]:
    """Record every call of `read_name` in both stages (its name's words and arguments)."""
    original = entity_readings.read_name

    def record(*args: Any, **kwargs: Any) -> str | None:
        occurrences = args[0]
        first = occurrences[0]
        calls.append((name_words(first.text[first.start : first.end]), args, kwargs))
        return original(*args, **kwargs)

    targets = [entities_module, match_module]
    for module in targets:
        module.read_name = record  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in targets:
            module.read_name = original  # type: ignore[attr-defined]


def decisions(
    items: Sequence[Recognised], rules: CompiledRules, weights: Weights
) -> list[Decision]:
    """Every reading the stages make on the passages with `weights`, as examples: the
    passage's name (or a longer name it is part of: "Paris Hilton" in a passage on the
    person Hilton) should get its true reading, the other names the model's label."""
    out = []
    for item in items:
        calls: list[tuple[tuple[str, ...], tuple[Any, ...], dict[str, Any]]] = []
        with recording(calls):
            _judge_story(item, read_entities(item, weights), rules, weights)
        target = name_words(item.passage.name)
        for words, args, kwargs in calls:
            features, label = _features(args, kwargs)
            preferred = reading_of(label)
            if tuple(words[: len(target)]) == target or is_part_of(target, words):
                out.append(Decision(features, preferred, item.passage.reading, 1.0))
            elif preferred is not None:
                out.append(Decision(features, preferred, preferred, OTHER_NAME_WEIGHT))
    return out


def _features(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, list[float]], str | None]:
    """The evidence of each kind alone: `tally` with one weight 1, the others 0."""
    zero = Weights(**dict.fromkeys(KINDS, 0.0))
    columns = []
    for kind in KINDS:
        votes, preferred = tally(
            *args, **{**kwargs, "weights": dataclasses.replace(zero, **{kind: 1.0})}
        )
        columns.append(votes.score)
    return {r: [c[r] for c in columns] for r in READINGS}, preferred


def fit(
    examples: Sequence[Decision], l2: float = 0.001, steps: int = 3000, rate: float = 0.5
) -> Weights:
    """A conditional logistic regression over the readings: P(reading) is proportional to
    exp(sum of weight * evidence of each kind for it), the same linear score the reader
    ranks by. Convex, so the fit is the same from any start (coordinate descent was not);
    weights kept >= 0 (each kind is evidence for a reading, never against it), L2-damped."""
    if not examples:
        return Weights()
    x = np.array([[e.features[r] for r in READINGS] for e in examples])  # (n, readings, kinds)
    truth = np.array([READINGS.index(e.truth) for e in examples])
    sample = np.array([e.weight for e in examples])
    sample = sample / sample.sum()
    w = np.ones(len(KINDS))
    for _ in range(steps):
        logits = x @ w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        expected = np.einsum("nr,nrk->nk", p, x)
        observed = x[np.arange(len(x)), truth]
        gradient = -(sample[:, None] * (observed - expected)).sum(axis=0) + l2 * w
        w = np.maximum(w - rate * gradient, 0.0)
    return Weights(**{kind: round(float(v), 3) for kind, v in zip(KINDS, w, strict=True)})


def train(items: Sequence[Recognised], rules: CompiledRules, rounds: int = 2) -> Weights:
    """Fit on the readings the stages make; the longer names a one-word name leans on are
    read with the weights of the round before, so fit again once on what they give."""
    weights = Weights()
    for _ in range(rounds):
        weights = fit(decisions(items, rules, weights))
    return weights


def cross_validate(items: Sequence[Recognised], rules: CompiledRules, folds: int) -> Counts:
    """Fit on k-1 folds, score the held-out fold; the folds' counts added up."""
    total = Counts()
    for k in range(folds):
        train_items = [item for i, item in enumerate(items) if i % folds != k]
        test = [item for i, item in enumerate(items) if i % folds == k]
        total += score_read(test, rules, train(train_items, rules))
    return total


# The values coordinate descent tries for each weight.
GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def descend(
    items: Sequence[Recognised],
    rules: CompiledRules,
    start: Weights | None = None,
    sweeps: int = 3,
) -> Weights:
    """Coordinate descent on the errors of the stage (`Counts.errors`: wrong rules fired or
    missed, other names relabelled): each weight in turn set to the value of `GRID` with
    the fewest errors, the others held, until a sweep changes nothing. A tie keeps the
    current value, so the result depends on `start` (`Weights()`, the hand-set values, by
    default); `fit` is the start-free alternative."""
    weights = start or Weights()
    best = score_read(items, rules, weights).errors
    for _ in range(sweeps):
        changed = False
        for kind in KINDS:
            for value in GRID:
                if value == getattr(weights, kind):
                    continue
                trial = dataclasses.replace(weights, **{kind: value})
                errors = score_read(items, rules, trial).errors
                if errors < best:
                    weights, best, changed = trial, errors, True
        if not changed:
            break
    return weights


def cross_validate_descent(
    items: Sequence[Recognised], rules: CompiledRules, folds: int, start: Weights | None = None
) -> Counts:
    """`descend` on k-1 folds, scored on the held-out fold; the folds' counts added up."""
    total = Counts()
    for k in range(folds):
        train_items = [item for i, item in enumerate(items) if i % folds != k]
        test = [item for i, item in enumerate(items) if i % folds == k]
        total += score_read(test, rules, descend(train_items, rules, start))
    return total
