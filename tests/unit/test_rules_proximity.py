"""Proximity (`near`, `same_sentence`) and per-term field scoping (`{term, in}`): matches
and non-matches, as in the table of docs/rules.md."""

from __future__ import annotations

from typing import Any

import pytest
from rules_stories import rule, story

from pipeline.config import Rule
from pipeline.models import EnrichedStory
from pipeline.rules.compile import compile_rules
from pipeline.rules.match import match_story, matched_terms
from pipeline.rules.tokens import sentence_starts

NEAR_3: dict[str, Any] = {"near": {"terms": ["Twitter"], "within": 3}}
IN_TITLE = {"term": "Tesla", "in": ["title"]}
MUSK_NEAR_TWITTER = rule("r", "Musk", **NEAR_3)
MUSK_NEAR_TWEETS = rule("r", "Musk", near={"terms": ["Tweet*"], "within": 1})
MUSK_NEAR_ITSELF = rule("r", "Musk", near={"terms": ["Musk"], "within": 5})
MUSK_NEAR_TWITTER_AND_SALE = rule(
    "r", "Musk", near=[{"terms": ["Twitter"], "within": 2}, {"terms": ["sale"], "within": 2}]
)
TESLA_RECALL = rule("r", "Tesla", same_sentence=["recall"])


def fired(subject: EnrichedStory, rules: list[Rule]) -> list[str]:
    return [m.rule.id for m in match_story(subject, compile_rules(rules))]


CASES = [
    # (case, rule, story, fires)
    ("near, adjacent", MUSK_NEAR_TWITTER, story("Musk Twitter deal"), True),
    ("near, 3 between", MUSK_NEAR_TWITTER, story("Musk will buy out Twitter"), True),
    ("near, 4 between", MUSK_NEAR_TWITTER, story("Musk will buy all of Twitter"), False),
    ("near, before", MUSK_NEAR_TWITTER, story("Twitter, says Musk"), True),
    ("near, absent", MUSK_NEAR_TWITTER, story("Musk spoke."), False),
    ("near, other field", MUSK_NEAR_TWITTER, story("Musk spoke.", title="Twitter"), False),
    ("near, across sentences", MUSK_NEAR_TWITTER, story("Ask Musk. Twitter fell"), True),
    (
        "near, inflected",
        rule("r", "acquire", near={"terms": ["merger"], "within": 2}),
        story("acquired in a mergers wave"),
        True,
    ),
    ("near, wildcard", MUSK_NEAR_TWEETS, story("Musk tweeted"), True),
    ("near, wildcard elsewhere", MUSK_NEAR_TWEETS, story("Musk said he never tweeted"), False),
    (
        "near, phrase",
        rule("r", "Elon Musk", near={"terms": ["X Corp"], "within": 0}),
        story("Elon Musk X Corp"),
        True,
    ),
    ("near, itself", MUSK_NEAR_ITSELF, story("Musk"), False),
    ("near, itself twice", MUSK_NEAR_ITSELF, story("Musk and Musk"), True),
    ("near, two conditions", MUSK_NEAR_TWITTER_AND_SALE, story("Twitter sale by Musk"), True),
    ("near, one of two", MUSK_NEAR_TWITTER_AND_SALE, story("Twitter by Musk"), False),
    ("sentence, same", TESLA_RECALL, story("Tesla said on Monday it would recall cars."), True),
    ("sentence, next", TESLA_RECALL, story("Tesla said on Monday. A recall is due."), False),
    ("sentence, Mr. abbreviation", TESLA_RECALL, story("Tesla told Mr. Smith of a recall."), True),
    (
        "sentence, Inc.",
        rule("r", "recall", same_sentence=["Musk"]),
        story("Tesla Inc. Chief Musk announced the recall."),
        True,
    ),
    ("sentence, paragraph", TESLA_RECALL, story("Tesla news\n\nrecall of cars"), False),
    ("sentence, inflected", TESLA_RECALL, story("Tesla recalls cars"), True),
    ("scoped, in title", rule("r", IN_TITLE), story("nothing", title="Tesla cuts prices"), True),
    ("scoped, only in text", rule("r", IN_TITLE), story("Tesla cuts prices", title="Cars"), False),
    ("scoped, overrides fields", rule("r", IN_TITLE, fields=["text"]), story(title="Tesla"), True),
    ("scoped all, in title", rule("r", "cars", all=[IN_TITLE]), story("cars", title="Tesla"), True),
    ("scoped all, in text", rule("r", "cars", all=[IN_TITLE]), story("Tesla cars"), False),
    ("scoped none, text", rule("r", "cars", none=[IN_TITLE]), story("Tesla cars"), True),
    ("scoped none, title", rule("r", "cars", none=[IN_TITLE]), story("cars", title="Tesla"), False),
    (
        "near with scoped term",
        rule("r", "Musk", near={"terms": [IN_TITLE], "within": 5}),
        story("Musk Tesla"),
        False,
    ),
    # words past typographic quotes and accented letters (offsets read from bytes, one a
    # character: `tokens._edges`, `match._FieldScan._words_before`)
    (
        "near, past quotes",
        rule("r", "Musk", **NEAR_3),
        story("\u201cMusk\u201d told \u2018Twitter\u2019"),
        True,
    ),
    (
        "near, accents, 4 between",
        rule("r", "Musk", **NEAR_3),
        story("Musk a dit: \u00ab caf\u00e9 r\u00e9sum\u00e9 \u00bb Twitter"),
        False,
    ),
    (
        "near, accents, 3 between",
        rule("r", "Musk", **NEAR_3),
        story("\u00c0 Z\u00fcrich Musk dit \u00ab caf\u00e9 \u00bb \u00e0 Twitter"),
        True,
    ),
    (
        "sentence, accents, apart",
        rule("r", "Musk", same_sentence=["Twitter"]),
        story("Caf\u00e9. Musk \u00e0 Z\u00fcrich. Twitter"),
        False,
    ),
    (
        "sentence, accents, together",
        rule("r", "Musk", same_sentence=["Twitter"]),
        story("Caf\u00e9. Musk \u00e0 Z\u00fcrich et Twitter."),
        True,
    ),
]


@pytest.mark.parametrize(
    ("case", "subject_rule", "subject", "fires"), CASES, ids=[c[0] for c in CASES]
)
def test_proximity_and_scoping(
    case: str, subject_rule: Rule, subject: EnrichedStory, fires: bool
) -> None:
    assert fired(subject, [subject_rule]) == (["r"] if fires else []), case


def test_an_alert_shows_the_hit_that_stood_near() -> None:
    subject = story("Musk spoke on Monday about cars and rockets. Later Musk bought Twitter.")
    [match] = match_story(subject, compile_rules([MUSK_NEAR_TWITTER]))
    [shown] = matched_terms(match, subject, 60)
    assert "**Musk** bought Twitter" in shown.snippet


@pytest.mark.parametrize(
    "text",
    [
        "\u00ab Caf\u00e9 \u00bb \u2014 \u201cZ\u00fcrich\u201d rivals: Musk bought Twitter.",
        "\u201cRivals\u201d \u2014 they\u2019re wary: Musk bought Twitter.",
    ],
)
def test_a_hit_past_quotes_and_accents_is_shown_where_it_is(text: str) -> None:
    subject = story(text)
    [match] = match_story(subject, compile_rules([rule("r", "Musk", **NEAR_3)]))
    [hit] = match.hits
    assert text[hit.start : hit.end] == "Musk"
    [shown] = matched_terms(match, subject, 60)
    assert "**Musk** bought Twitter" in shown.snippet


def test_proximity_terms_do_not_make_a_rule_fire_alone() -> None:
    assert fired(story("Twitter and recall"), [MUSK_NEAR_TWITTER]) == []


SENTENCES = [
    ("One. Two.", ["One. ", "Two."]),
    ("Mr. Smith went. He left!", ["Mr. Smith went. ", "He left!"]),
    ('He said "no." Then left', ['He said "no." ', "Then left"]),
    ("J. R. Smith spoke", ["J. R. Smith spoke"]),
    ("U.S. sanctions hit. 2024 was hard", ["U.S. sanctions hit. ", "2024 was hard"]),
    ("a\n\nb", ["a\n\n", "b"]),
    ("the end. and on", ["the end. and on"]),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCES)
def test_sentence_splitter(text: str, expected: list[str]) -> None:
    starts = sentence_starts(text)
    assert [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)] == expected


def test_condition_terms_are_looked_up_not_scanned() -> None:
    """A term only in `near`/`all`/`none`/`same_sentence` is in no automaton (a story full of
    it costs nothing for rules whose watch terms are absent), yet decides as before: in
    English and in a language stemmed its own way, overlapping occurrences included."""
    rules = [
        rule("near", "Renault", near={"terms": ["usine"], "within": 2}),
        rule("all", "Musk", all=["merger"]),
        rule("none", "Tesla", none=["recall"]),
        rule("both", "recall"),  # a watch term of one rule, a `none` term of another
    ]
    compiled = compile_rules(rules)

    def scanned(key: str) -> bool:
        return any(automaton.exists(key) for automaton in compiled.automata.values())

    assert not scanned(" usin ") and not scanned(" merger ") and scanned(" recal ")
    assert sorted(compiled.conditions.values()) == [" merger ", " usin "]
    french = story("Renault ferme deux usines du nord").model_copy(update={"language": "fr"})
    assert [m.rule.id for m in match_story(french, compiled)] == ["near"]
    assert fired(story("Musk plans mergers"), rules) == ["all"]
    assert fired(story("Tesla recalls cars"), rules) == ["both"]
    assert fired(story("Tesla sells cars"), rules) == ["none"]
