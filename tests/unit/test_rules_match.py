"""The pure matcher: which rules fire on which text, and what an alert shows of the match."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_stories import entity, rule, seed_story, story

from pipeline.config import Rule, load_rules
from pipeline.errors import ConfigError
from pipeline.models import EnrichedStory
from pipeline.rules.compile import compile_rules
from pipeline.rules.match import match_story, matched_terms, snippet

ROOT = Path(__file__).resolve().parents[2]
TESLA_ORG = rule("tesla", "Tesla", entity_types=["ORG"])
TESLA_CO = [("ORG", "Tesla")]


def fired(rules: list[Rule], subject: EnrichedStory) -> list[str]:
    return [m.rule.id for m in match_story(subject, compile_rules(rules))]


CASES = [
    # (case, rule, story, fires)
    ("plain word", rule("r", "Tesla"), story("Tesla cut prices."), True),
    ("other case", rule("r", "tesla"), story("TESLA CUT PRICES"), True),
    ("possessive", rule("r", "Tesla"), story("Tesla's factory"), True),
    ("curly possessive", rule("r", "Tesla"), story("Tesla\u2019s factory"), True),
    ("partial word", rule("r", "Tesla"), story("A trip to Teslaville."), False),
    ("word inside", rule("r", "Tesla"), story("the ProTesla fan club"), False),
    ("inflection -e", rule("r", "unbundling"), story("plans to unbundle the suite"), True),
    ("inflection -ed", rule("r", "unbundling"), story("the unbundled offer"), True),
    ("inflection -es", rule("r", "unbundling"), story("it unbundles Teams"), True),
    ("inflection back", rule("r", "unbundled"), story("opposed to unbundling"), True),
    ("plural", rule("r", "tariff"), story("new tariffs on steel"), True),
    ("exact keeps form", rule("r", "unbundling", exact=True), story("the unbundled offer"), False),
    ("exact same form", rule("r", "unbundling", exact=True), story("Unbundling, again"), True),
    ("prefix wildcard", rule("r", "semicond*"), story("Semiconductors slumped"), True),
    ("wildcard start", rule("r", "semicond*"), story("a nonsemiconductor firm"), False),
    ("phrase", rule("r", "Qin Gang"), story("said Qin Gang on Monday"), True),
    ("phrase line break", rule("r", "Qin Gang"), story("said Qin\nGang on Monday"), True),
    ("phrase split", rule("r", "Qin Gang"), story("Qin said the gang left"), False),
    ("phrase sentence", rule("r", "Qin Gang"), story("met Qin. Gang members"), False),
    ("phrase paragraph", rule("r", "Qin Gang"), story("met Qin\n\nGang members"), False),
    ("hyphen meets space", rule("r", "US China"), story("US-China relations"), True),
    ("ampersand kept", rule("r", "AT&T"), story("AT&T shares"), True),
    ("ampersand needed", rule("r", "AT&T"), story("look at t shirts"), False),
    ("ORG rule, ORG", TESLA_ORG, story("Tesla cut prices.", entities=TESLA_CO), True),
    (
        "ORG rule, Nikola Tesla",
        TESLA_ORG,
        story("The inventor Nikola Tesla was born in 1856.", entities=[("PERSON", "Nikola Tesla")]),
        False,
    ),
    ("ORG rule, no entity", TESLA_ORG, story("Tesla cut prices."), False),
    (
        "ORG rule, museum named after the inventor",
        TESLA_ORG,
        story("the Nikola Tesla Museum", entities=[("ORG", "the Nikola Tesla Museum")]),
        False,
    ),
    (
        "ORG rule, inventor mislabelled ORG by the model",
        TESLA_ORG,
        story("how Nikola Tesla moved to ideas", entities=[("ORG", "Nikola Tesla")]),
        False,
    ),
    (
        "ORG rule, Tesla Inc.",
        TESLA_ORG,
        story("Tesla Inc. shares rose", entities=[("ORG", "Tesla Inc.")]),
        True,
    ),
    (
        "ORG rule, the Tesla board",
        TESLA_ORG,
        story("The Tesla board met", entities=[("ORG", "The Tesla")]),
        True,
    ),
    (
        "ORG rule, possessor",
        TESLA_ORG,
        story("Musk's Tesla grew", entities=[("ORG", "Musk's Tesla")]),
        True,
    ),
    (
        "PERSON rule, the surname of a full name",
        rule("r", "Ford", entity_types=["PERSON"]),
        story("Former president Gerald Ford is remembered", entities=[("PERSON", "Gerald Ford")]),
        True,
    ),
    (
        "PERSON rule, a company that ends a person's name",
        rule("r", "Ford", entity_types=["PERSON"]),
        story("the Henry Ford Museum opened", entities=[("ORG", "the Henry Ford Museum")]),
        False,
    ),
    ("all present", rule("r", "Tesla", all=["China"]), story("Tesla in China"), True),
    ("all missing", rule("r", "Tesla", all=["China", "Musk"]), story("Tesla in China"), False),
    ("none present", rule("r", "Tesla", none=["Nikola"]), story("Nikola Tesla's coil"), False),
    ("none absent", rule("r", "Tesla", none=["Nikola"]), story("Tesla's coil"), True),
    ("title only", rule("r", "Tesla", fields=["title"]), story("Tesla in text"), False),
    (
        "title only, in title",
        rule("r", "Tesla", fields=["title"]),
        story("text", title="Tesla news"),
        True,
    ),
    ("source feed", rule("r", "Tesla", sources=["example"]), story("Tesla"), True),
    ("source site", rule("r", "Tesla", sources=["example.com"]), story("Tesla"), True),
    ("source other", rule("r", "Tesla", sources=["reuters.com"]), story("Tesla"), False),
    ("topic in", rule("r", "Tesla", topics=["autos"]), story("Tesla", topics=["autos"]), True),
    ("topic out", rule("r", "Tesla", topics=["autos"]), story("Tesla", topics=["tech"]), False),
    ("disabled", rule("r", "Tesla", enabled=False), story("Tesla"), False),
    ("non-ASCII case", rule("r", "Zürich"), story("Flights to ZÜRICH resumed"), True),
    ("ligature", rule("r", "finance"), story("the \ufb01nance minister"), True),
    ("sharp s", rule("r", "Strasse", exact=True), story("Hauptstraße 5"), False),
    ("casefold sharp s", rule("r", "STRASSE"), story("an der Straße"), True),
    ("digits", rule("r", "G7"), story("at the G7 summit"), True),
    ("digits partial", rule("r", "G7"), story("at the G77 summit"), False),
]


@pytest.mark.parametrize(
    ("watch", "subject", "fires"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule_fires_or_not(watch: Rule, subject: EnrichedStory, fires: bool) -> None:
    assert fired([watch], subject) == ([watch.id] if fires else [])


def test_seed_story_fires_exactly_the_three_seed_rules() -> None:
    rules = load_rules(ROOT / "configs" / "rules.yaml")
    assert fired(rules, seed_story()) == ["tesla", "qin-gang", "unbundling"]


def test_seed_story_traps_do_not_fire() -> None:
    """Comment-form words were left out as furniture; Tesla as a person is not Tesla the ORG."""
    traps = [
        rule("comment-form", "enter your comment", "enter your name"),
        rule("tesla-person", "Tesla", entity_types=["PERSON"]),
        rule("qin-org", "Qin Gang", entity_types=["ORG"]),
        rule("partial", "Tesl", exact=True),
    ]
    assert fired(traps, seed_story()) == []


def test_one_matcher_many_rules_same_term() -> None:
    rules = [rule(f"r{i}", "tariff") for i in range(50)] + [rule("other", "steel*")]
    assert fired(rules, story("Steelmakers fear new tariffs")) == [
        *(f"r{i}" for i in range(50)),
        "other",
    ]


def test_matched_terms_mark_the_match_in_each_field() -> None:
    subject = story("Shares of Tesla rose.", title="Tesla's day", summary="About cars.")
    [match] = match_story(subject, compile_rules([rule("r", "Tesla", "cars")]))
    terms = [
        (t.term, t.field, t.matched_text, t.snippet) for t in matched_terms(match, subject, 80)
    ]
    assert terms == [
        ("Tesla", "title", "Tesla", "**Tesla**'s day"),
        ("cars", "summary", "cars", "About **cars**."),
        ("Tesla", "text", "Tesla", "Shares of **Tesla** rose."),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Qin Gang met Tesla\u2019s chief in Zürich; \u201cunbundled\u201d \ufb01nance, Straße 5.",
        'Plain ASCII: Qin Gang met Tesla\'s chief; "unbundled" finance.',
    ],
)
def test_matched_text_sits_at_its_offsets(text: str) -> None:
    """Both tokeniser paths (ASCII words, and words that need Unicode folding) place hits."""
    subject = story(text)
    rules = [rule("a", "Qin Gang"), rule("b", "Tesla"), rule("c", "unbundling")]
    found = {m.rule.id: m.hits[0] for m in match_story(subject, compile_rules(rules))}
    assert {k: text[h.start : h.end] for k, h in found.items()} == {
        "a": "Qin Gang",
        "b": "Tesla",
        "c": "unbundled",
    }


def test_matched_text_is_the_inflected_form() -> None:
    subject = story("He was opposed to unbundled suites.")
    [match] = match_story(subject, compile_rules([rule("r", "unbundling")]))
    [term] = matched_terms(match, subject, 80)
    assert (term.term, term.matched_text) == ("unbundling", "unbundled")


@pytest.mark.parametrize(
    ("text", "start", "end", "expected"),
    [
        ("short Tesla text", 6, 11, "short **Tesla** text"),
        (
            "one two three four five six seven Tesla eight nine ten eleven twelve thirteen",
            34,
            39,
            "…five six seven **Tesla** eight nine ten…",
        ),
        ("line\n\nbreaks  Tesla\tand tabs", 14, 19, "line breaks **Tesla** and tabs"),
    ],
)
def test_snippet(text: str, start: int, end: int, expected: str) -> None:
    assert snippet(text, start, end, 36 if len(text) > 40 else 80) == expected


def test_term_without_letters_names_file_rule_and_field() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_rules([rule("punct", "ok", none=["!!!"])], Path("configs/rules.yaml"))
    assert caught.value.problems == [
        "configs/rules.yaml: rule 'punct': field 'none': term '!!!' has no letters or digits"
    ]


def shipped_examples() -> dict[str, Rule]:
    """The example rules of configs/rules.yaml, switched on."""
    rules = load_rules(ROOT / "configs" / "rules.yaml")
    return {r.id: r.model_copy(update={"enabled": True}) for r in rules if not r.enabled}


def apple_story(url: str, label: str = "ORG") -> EnrichedStory:
    title = "Apple asks Foxconn to move iPhone assembly"
    subject = story("Body text.", title=title, url=url)
    return subject.model_copy(update={"entities": [entity(label, "title", title, "Apple")]})


EXAMPLES = [
    ("chip-export-controls", story("The US widened export controls on semiconductors."), True),
    ("chip-export-controls", story("New export controls hit steel."), False),
    (
        "chip-export-controls",
        story("Export controlled semiconductor kits, and potato chips."),
        False,
    ),
    ("apple-supply-chain", apple_story("https://www.reuters.com/tech/apple"), True),
    ("apple-supply-chain", apple_story("https://blog.example.com/apple"), False),
    ("apple-supply-chain", apple_story("https://apnews.com/x", label="PRODUCT"), False),
    ("rate-decisions", story("A rate hike of 50 basis points.", topics=["economy"]), True),
    ("rate-decisions", story("A rate hike of 50 basis points.", topics=["sport"]), False),
]


@pytest.mark.parametrize(("rule_id", "subject", "fires"), EXAMPLES)
def test_shipped_example_rules(rule_id: str, subject: EnrichedStory, fires: bool) -> None:
    assert fired([shipped_examples()[rule_id]], subject) == ([rule_id] if fires else [])
