"""Topics: the taxonomy file is validated loudly, and scores follow the evidence."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.extractor.terms import TermIndex
from pipeline.extractor.topics import (
    Taxonomy,
    feed_categories,
    load_taxonomy,
    score_topics,
)
from pipeline.models import Entity

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "topics.yaml"


def _taxonomy(tmp_path: Path, body: str) -> Taxonomy:
    path = tmp_path / "topics.yaml"
    path.write_text(body, encoding="utf-8")
    return load_taxonomy(path)


def _entity(text: str, label: str) -> Entity:
    return Entity(text=text, label=label, count=1, first_position=0)


@pytest.fixture(scope="module")
def shipped() -> Taxonomy:
    return load_taxonomy(SHIPPED)


def test_the_shipped_taxonomy_covers_the_news_topics(shipped: Taxonomy) -> None:
    expected = {
        "politics", "diplomacy", "conflict-defence", "economy", "markets", "business",
        "autos-evs", "technology", "energy", "climate", "health", "science", "sport",
    }  # fmt: skip
    assert expected <= set(shipped.ids)
    assert len(shipped.ids) >= 20


BAD_FILES = [
    pytest.param(
        "topics: [{id: a, terms: []}]", r"topics\[0\] \(id 'a'\): a topic needs", id="no-evidence"
    ),
    pytest.param(
        "topics: [{id: a, terms: [x]}, {id: a, terms: [y]}]",
        r"field 'topics': duplicate topic id 'a'",
        id="duplicate-id",
    ),
    pytest.param(
        "topics: [{id: ok, terms: [x]}, {id: energy, terms: [oil], entity_labels: {BRAND: 1}}]",
        r"topics\[1\] \(id 'energy'\): field 'entity_labels': unknown entity label 'BRAND'",
        id="unknown-label",
    ),
    pytest.param(
        "topics: [{id: a, terms: ['el*ect']}]",
        r"topics\[0\] \(id 'a'\): field 'terms': '\*' is only allowed at the end",
        id="star-inside",
    ),
    pytest.param(
        "topics: [{id: a, term: [x]}]",
        r"topics\[0\] \(id 'a'\): field 'term': unknown key",
        id="typo",
    ),
    pytest.param(
        "topics: [{id: 'Not An Id', terms: [x]}]", r"topics\[0\].*field 'id'", id="bad-id"
    ),
    pytest.param("min_score: 2\ntopics: [{id: a, terms: [x]}]", r"field 'min_score'", id="score"),
    pytest.param("topics: []", r"field 'topics'", id="empty"),
    pytest.param("- just a list", r"expected a mapping", id="not-a-mapping"),
    pytest.param("topics: [", r"not valid YAML", id="not-yaml"),
]


@pytest.mark.parametrize(("body", "message"), BAD_FILES)
def test_a_bad_taxonomy_names_file_topic_and_field(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _taxonomy(tmp_path, body)
    assert str(tmp_path / "topics.yaml") in str(caught.value)
    assert caught.value.problems
    assert any(re.search(message, p) for p in caught.value.problems), caught.value


def test_a_missing_taxonomy_says_which_setting_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found \(nlp\.topics_file\)"):
        load_taxonomy(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("terms", "text", "counts"),
    [
        (["election*"], "Elections, electioneering; the elect.", {"election*": 2}),
        (["interest rate*"], "Interest\n  rates rose; interest-rate", {"interest rate*": 1}),
        (["ev"], "EVs and an EV, never evening", {"ev": 1}),
        (["ai"], "AI, said Mai; ai-driven", {"ai": 2}),
        (["s&p 500"], "The S&P 500 rose", {"s&p 500": 1}),
        (
            ["electric vehicle*", "vehicle*"],
            "Electric vehicles",
            {"electric vehicle*": 1, "vehicle*": 1},
        ),
        (["war"], "Warsaw software war.", {"war": 1}),
        (["café"], "Café society", {"café": 1}),
        ([], "anything", {}),
    ],
)
def test_terms_match_whole_words(terms: list[str], text: str, counts: dict[str, int]) -> None:
    [found] = TermIndex([terms]).counts(text)
    assert found == counts


def test_terms_are_counted_per_group() -> None:
    index = TermIndex([["oil", "tariff*"], ["tariff*"], []])
    assert index.counts("Oil tariffs and more tariffs") == [
        {"oil": 1, "tariff*": 2}, {"tariff*": 2}, {},
    ]  # fmt: skip


SMALL = """
min_score: 0.3
max_topics: 2
saturation: 4
topics:
  - {id: autos, terms: [car, electric vehicle*], entities: [Tesla]}
  - {id: markets, terms: [shares], entity_labels: {MONEY: 1}}
  - {id: sport, terms: [football], categories: [Soccer]}
"""


@dataclass(frozen=True)
class Story:
    title: str = ""
    text: str = ""
    entities: tuple[Entity, ...] = ()
    tags: tuple[str, ...] = ()


TESLA, FIVE_BN, ONE_DOLLAR = (
    _entity("Tesla", "ORG"),
    _entity("$5bn", "MONEY"),
    _entity("$1", "MONEY"),
)

SCORE_CASES = [
    pytest.param(Story(text="A quiet day."), [], id="nothing"),
    pytest.param(Story(text="One car."), [], id="one-word-is-not-a-topic"),
    pytest.param(Story(text="car " * 8), [("autos", 0.429)], id="term-capped"),
    pytest.param(
        Story("Electric vehicles", "A car and electric vehicles."),
        [("autos", 0.5)],
        id="title-counts-double",
    ),
    pytest.param(Story(text="Tesla sold a car.", entities=(TESLA,)), [("autos", 0.429)], id="ner"),
    pytest.param(Story(text="tesla and apples"), [], id="name-without-ner-is-not-evidence"),
    pytest.param(Story(text="Match report.", tags=("World/Soccer",)), [("sport", 0.5)], id="tag"),
    pytest.param(
        Story(text="shares", entities=(FIVE_BN, ONE_DOLLAR), tags=("Sport",)),
        [("sport", 0.5), ("markets", 0.429)],
        id="labels-and-category-best-first",
    ),
    pytest.param(
        Story(
            "Electric vehicles",
            "car electric vehicles shares football",
            (TESLA, FIVE_BN),
            ("sport",),
        ),
        [("autos", 0.6), ("sport", 0.556)],
        id="max-topics",
    ),
]


@pytest.mark.parametrize(("story", "expected"), SCORE_CASES)
def test_scores(tmp_path: Path, story: Story, expected: list[tuple[str, float]]) -> None:
    taxonomy = _taxonomy(tmp_path, SMALL)
    scores = score_topics(
        taxonomy, title=story.title, text=story.text, entities=story.entities, categories=story.tags
    )
    assert [(s.topic, s.score) for s in scores] == expected


def test_feed_categories_split_paths() -> None:
    assert feed_categories(["World/Politics", "Science & Tech"]) == {
        "world", "politics", "world/politics", "science & tech",
    }  # fmt: skip


def test_the_seed_story_is_about_diplomacy_and_cars(shipped: Taxonomy, shared_dir: Path) -> None:
    title, text = (shared_dir / "corpora" / "seed-story.txt").read_text().split("\n", 1)
    entities = [_entity("Tesla", "ORG"), _entity("Elon Musk", "PERSON"), _entity("China", "GPE")]
    topics = {s.topic for s in score_topics(shipped, title=title, text=text, entities=entities)}
    assert {"diplomacy", "autos-evs", "business"} <= topics
    assert not topics & {"sport", "health", "climate", "media-culture"}
