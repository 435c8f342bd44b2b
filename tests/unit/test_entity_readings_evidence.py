"""The kinds of evidence added for issue 14's last clause, one test each, on the pure reader
(no model): a given name, an age, the next sentence's subject (also across a title and
its summary), a pronoun right after the name, "the" before it, cue words counted by
content-word distance, and civic words of a place. Each passage here was read wrong
before that evidence existed.
"""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.entity_readings import (
    DEFAULT_WEIGHTS,
    ORG,
    PERSON,
    PLACE,
    Occurrence,
    Weights,
    given_names,
    read_name,
    tally,
)

ONLY = Weights(**{f.name: 0.0 for f in dataclasses.fields(Weights)})


def _at(text: str, name: str, label: str | None, following: str = "") -> Occurrence:
    start = text.index(name)
    return Occurrence(text, start, start + len(name), label, (), True, following)


def _read(text: str, name: str, label: str | None, following: str = "") -> str | None:
    return read_name([_at(text, name, label, following)], weights=DEFAULT_WEIGHTS)


def _alone(
    kind: str, text: str, name: str, label: str | None = None, following: str = ""
) -> dict[str, float]:
    """The votes of one kind of evidence alone (that weight 1, the others 0)."""
    votes, _ = tally(
        [_at(text, name, label, following)], weights=dataclasses.replace(ONLY, **{kind: 1.0})
    )
    return votes.score


def test_given_names_come_from_the_installed_lists() -> None:
    names = given_names()
    assert len(names) > 10_000
    assert {"paris", "nikola", "kerry", "chelsea"} <= names
    # The bare "en" list is left out: it holds words and surnames ("King", "North", "Porsche").
    assert not {"king", "north", "porsche", "general"} & names


@pytest.mark.parametrize(
    ("text", "name", "label"),
    [
        ("Paris Hilton testifies before Congress", "Paris Hilton", "ORG"),
        ("Nikola Tesla's notebooks go on display", "Nikola Tesla's", "ORG"),
        ("Chelsea Clinton Joins Board of Vaccine Alliance", "Chelsea Clinton Joins", "PERSON"),
    ],
    ids=["full-name", "possessive", "headline-run-on"],
)
def test_a_given_name_heading_a_name_is_evidence_of_a_person(
    text: str, name: str, label: str
) -> None:
    assert _alone("given_name", text, name, label) == {ORG: 0.0, PERSON: 1.0, PLACE: 0.0}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Lincoln council approves budget", "Lincoln council"),
        ("Organisers said Wells, England's smallest city, will host it", "Wells, England's"),
        ("Walt Disney Company Reports Earnings", "Walt Disney Company Reports"),
    ],
    ids=["lower-case-word", "comma", "designator"],
)
def test_a_name_not_written_as_a_persons_gets_no_given_name_vote(text: str, name: str) -> None:
    assert _alone("given_name", text, name, "ORG")[PERSON] == 0.0


def test_a_given_name_right_before_an_unlabelled_name_makes_it_a_person() -> None:
    text = "Kerry Washington returns to Broadway next spring"
    assert _read(text, "Washington", None) == PERSON


def test_an_age_after_the_name_makes_it_a_person() -> None:
    assert _read("Ford, 82, said the role was his last.", "Ford", "ORG") == PERSON
    assert _alone("age", "Jordan (34) signs extension", "Jordan")[PERSON] == 1.0


def test_the_next_sentences_subject_says_what_the_titles_name_is() -> None:
    title = "Hilton to open a new site in Tibet"
    summary = "The company said the site would have 120 rooms."
    assert _read(title, "Hilton", "GPE") == "GPE"  # the title alone
    assert _read(title, "Hilton", "GPE", following=summary) == ORG
    maker = "The vacuum cleaner maker said the roles would go."
    assert _alone("next_sentence", "Dyson to cut jobs", "Dyson", "PERSON", maker)[ORG] == 1.0
    star = "The Oscar winner will star in a new play."
    assert _alone("next_sentence", "Ruehl returns", "Ruehl", "ORG", star)[PERSON] == 1.0


def test_a_pronoun_right_after_the_name_counts_as_near() -> None:
    text = "Morgan, who joined the club from Chelsea in January, scored twice."
    assert _read(text, "Morgan", "ORG") == PERSON
    assert _alone("near_pronoun", text, "Morgan")[PERSON] == 1.0


def test_the_before_a_one_word_name_is_no_person() -> None:
    votes = _alone("article", "Parts of the Amazon could turn to savannah.", "Amazon")
    assert votes == {ORG: 0.5, PERSON: 0.0, PLACE: 0.5}
    assert _alone("article", "Morgan walked off the set.", "Morgan") == {
        ORG: 0.0,
        PERSON: 0.0,
        PLACE: 0.0,
    }


def test_cue_words_are_near_in_content_words() -> None:
    """ "said it would move its headquarters": 'headquarters' is the third word that says
    anything, so it counts as near."""
    text = "Dyson said it would move its headquarters to Singapore."
    assert _alone("near", text, "Dyson")[ORG] == 1.0
    assert _read(text, "Dyson", "PERSON") == ORG


def test_civic_words_make_an_unlabelled_name_a_place() -> None:
    assert _read("Florence limits short-term rentals in historic centre", "Florence", None) == PLACE
