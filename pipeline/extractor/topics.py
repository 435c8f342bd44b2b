"""Topic tags from a taxonomy the user owns (`configs/topics.yaml`).

A topic is scored from three kinds of evidence: its terms in the title and the
text, the story's named entities (a name NER confirmed, or a share of entities
of some label), and the feed's own categories. Evidence saturates: a score is
`evidence / (evidence + saturation)`, so one stray word never makes a topic and
a long story cannot pile up a certainty it does not have. Each term counts at
most `TERM_CAP` times in the text, and once (double) in the title.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.config import ENTITY_LABELS
from pipeline.errors import ConfigError
from pipeline.extractor.terms import TermIndex
from pipeline.models import Entity, TopicScore

TERM_CAP = 3
ENTITY_CAP = 3
TITLE_WEIGHT = 2.0
ENTITY_WEIGHT = 2.0
CATEGORY_WEIGHT = 4.0
_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_CATEGORY_SPLIT = re.compile(r"\s*[/>|,;:]\s*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Topic(_Strict):
    """One entry of topics.yaml."""

    id: str = Field(pattern=_ID)
    name: str = ""
    terms: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list, description="Names NER must find.")
    entity_labels: dict[str, float] = Field(
        default_factory=dict, description="Label -> evidence per entity of that label."
    )
    categories: list[str] = Field(default_factory=list, description="Feed categories meaning it.")

    @field_validator("terms", "entities", "categories")
    @classmethod
    def _no_blank(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values]
        if any(not v or v == "*" for v in cleaned):
            raise ValueError("entries must not be empty")
        if any("*" in v[:-1] for v in cleaned):
            raise ValueError("'*' is only allowed at the end of a term")
        return cleaned

    @field_validator("entity_labels")
    @classmethod
    def _known_labels(cls, labels: dict[str, float]) -> dict[str, float]:
        for label, weight in labels.items():
            if label.upper() not in ENTITY_LABELS:
                known = ", ".join(sorted(ENTITY_LABELS))
                raise ValueError(f"unknown entity label {label!r} (known: {known})")
            if not 0 < weight <= 10:
                raise ValueError(f"weight of {label!r} must be in (0, 10]")
        return {label.upper(): weight for label, weight in labels.items()}

    @model_validator(mode="after")
    def _some_evidence(self) -> Topic:
        if not (self.terms or self.entities or self.entity_labels or self.categories):
            raise ValueError("a topic needs terms, entities, entity_labels or categories")
        return self


class TaxonomyFile(_Strict):
    min_score: float = Field(0.3, ge=0, le=1, description="Lower scores are not tagged.")
    max_topics: int = Field(5, ge=1, description="At most this many topics per story.")
    saturation: float = Field(6.0, gt=0, description="Evidence that scores 0.5.")
    topics: list[Topic] = Field(min_length=1)

    @field_validator("topics")
    @classmethod
    def _unique_ids(cls, topics: list[Topic]) -> list[Topic]:
        seen: set[str] = set()
        for topic in topics:
            if topic.id in seen:
                raise ValueError(f"duplicate topic id {topic.id!r}")
            seen.add(topic.id)
        return topics


@dataclass(frozen=True)
class CompiledTopic:
    id: str
    entities: frozenset[str]
    entity_labels: dict[str, float]
    categories: frozenset[str]


@dataclass(frozen=True)
class Taxonomy:
    """The loaded, compiled taxonomy: what `score_topics` needs."""

    topics: tuple[CompiledTopic, ...]
    terms: TermIndex
    min_score: float = 0.3
    max_topics: int = 5
    saturation: float = 6.0

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.topics]


# --- loading -----------------------------------------------------------------------------


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and validate topics.yaml; a `ConfigError` names the file, the topic and the field."""
    data = _read(path)
    try:
        parsed = TaxonomyFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, data.get("topics"))) from exc
    return compile_taxonomy(parsed)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: file not found (nlp.topics_file)"]) from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping with a 'topics' list at the top level"])
    return data


def _describe(path: Path, exc: ValidationError, entries: Any) -> list[str]:
    """'configs/topics.yaml: topics[3] (id 'energy'): field 'entity_labels': unknown ...'."""
    return [f"{path}: {_where(error['loc'], entries)}: {_message(error)}" for error in exc.errors()]


def _where(loc: tuple[int | str, ...], entries: Any) -> str:
    if len(loc) < 2 or loc[0] != "topics" or not isinstance(loc[1], int):
        return f"field '{'.'.join(map(str, loc))}'" if loc else "top level"
    index = loc[1]
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    ident = f" (id {entry['id']!r})" if isinstance(entry, dict) and entry.get("id") else ""
    rest = ".".join(map(str, loc[2:]))
    return f"topics[{index}]{ident}" + (f": field '{rest}'" if rest else "")


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")


def compile_taxonomy(parsed: TaxonomyFile) -> Taxonomy:
    topics = tuple(_compile(topic) for topic in parsed.topics)
    terms = TermIndex([topic.terms for topic in parsed.topics])
    return Taxonomy(topics, terms, parsed.min_score, parsed.max_topics, parsed.saturation)


def _compile(topic: Topic) -> CompiledTopic:
    names = [topic.id, topic.name, *topic.categories]
    return CompiledTopic(
        id=topic.id,
        entities=frozenset(e.lower() for e in topic.entities),
        entity_labels=dict(topic.entity_labels),
        categories=frozenset(_category(n) for n in names if n),
    )


def _category(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


# --- scoring --------------------------------------------------------------------------------


def score_topics(
    taxonomy: Taxonomy,
    *,
    title: str,
    text: str,
    entities: Sequence[Entity] = (),
    categories: Iterable[str] = (),
) -> list[TopicScore]:
    """The story's topics, best first, at most `max_topics`, none under `min_score`."""
    facts = StoryFacts.of(taxonomy, title, text, entities, categories)
    scores = []
    for index, topic in enumerate(taxonomy.topics):
        evidence = topic_evidence(topic, index, facts)
        score = evidence / (evidence + taxonomy.saturation) if evidence > 0 else 0.0
        if score >= taxonomy.min_score and score > 0:
            scores.append(TopicScore(topic=topic.id, score=round(score, 3)))
    scores.sort(key=lambda s: -s.score)
    return scores[: taxonomy.max_topics]


@dataclass(frozen=True)
class StoryFacts:
    """What scoring needs from one story, gathered once for all topics."""

    in_text: list[Counter[str]]  # per topic: term -> occurrences in the text
    in_title: list[Counter[str]]
    entity_names: frozenset[str]
    entity_labels: Counter[str]
    categories: frozenset[str]

    @classmethod
    def of(
        cls,
        taxonomy: Taxonomy,
        title: str,
        text: str,
        entities: Sequence[Entity],
        categories: Iterable[str],
    ) -> StoryFacts:
        return cls(
            in_text=taxonomy.terms.counts(text),
            in_title=taxonomy.terms.counts(title),
            entity_names=frozenset(e.text.lower() for e in entities),
            entity_labels=Counter(e.label for e in entities),
            categories=feed_categories(categories),
        )


def feed_categories(tags: Iterable[str]) -> frozenset[str]:
    """'World/Politics' counts as 'world', 'politics' and 'world/politics'."""
    found: set[str] = set()
    for tag in tags:
        parts = [_category(p) for p in _CATEGORY_SPLIT.split(tag) if p.strip()]
        found.update(parts)
        found.add(_category(tag))
    return frozenset(found)


def topic_evidence(topic: CompiledTopic, index: int, facts: StoryFacts) -> float:
    """Points for one topic: terms (capped), title terms (double), entities, feed category."""
    in_text = sum(min(count, TERM_CAP) for count in facts.in_text[index].values())
    in_title = TITLE_WEIGHT * len(facts.in_title[index])
    named = ENTITY_WEIGHT * min(len(topic.entities & facts.entity_names), ENTITY_CAP)
    labelled = sum(
        weight * min(facts.entity_labels[label], ENTITY_CAP)
        for label, weight in topic.entity_labels.items()
    )
    category = CATEGORY_WEIGHT if topic.categories & facts.categories else 0.0
    return in_text + in_title + named + labelled + category
