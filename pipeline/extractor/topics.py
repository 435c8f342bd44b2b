"""Topic tags from a taxonomy the user owns (topics.yaml, `nlp.topics_file`).

A topic is scored from three kinds of evidence: its terms in the title and the
text, the story's named entities (a name NER confirmed, or a share of entities
of some label), and the feed's own categories. Evidence saturates: a score is
`evidence / (evidence + saturation)`, so one stray word never makes a topic and
a long story cannot pile up a certainty it does not have. Each term counts at
most `TERM_CAP` times in the text, and once (double) in the title.

The file's schema and its validation live with the rest of the config
(`pipeline/config/taxonomy.py`); this module compiles the validated taxonomy and
scores stories against it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.taxonomy import TaxonomyFile, Topic, load_taxonomy_file
from pipeline.extractor.terms import TermIndex
from pipeline.models import Entity, TopicScore

TERM_CAP = 3
ENTITY_CAP = 3
TITLE_WEIGHT = 2.0
ENTITY_WEIGHT = 2.0
CATEGORY_WEIGHT = 4.0
_CATEGORY_SPLIT = re.compile(r"\s*[/>|,;:]\s*")


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
    """Read, validate and compile a topics.yaml (tools and tests; commands get theirs from
    the `Config`). A `ConfigError` names the file, the topic and the field."""
    return compile_taxonomy(load_taxonomy_file(path))


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
