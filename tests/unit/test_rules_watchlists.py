"""Rules files at watch-list size: validation errors that name file, rule and field (also
for proximity and scoped terms, and past the first validation chunk), reloads that do
not keep the old automata, and alert series bounded whatever the number of rules."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml_rs
from prometheus_client import CollectorRegistry
from rules_stories import story

from pipeline.config import Rule, RulesSettings, load_rules
from pipeline.config import rules as rules_module
from pipeline.config.rules import CHUNK, validate_rules
from pipeline.config.rules_stream import item_starts
from pipeline.config.schema import FREEZE_AT, parse_yaml
from pipeline.errors import ConfigError
from pipeline.metrics import OTHER_RULES, Metrics
from pipeline.rules import engine as engine_module
from pipeline.rules import flood
from pipeline.rules.compile import CompiledRules, compile_rules, term_problems
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import MEMORY, AlertStore

GOOD = "  - id: ok\n    terms: [Tesla]\n"
ERRORS = [
    # (rule as written, the error line's tail after the file name)
    ("  - id: r1\n    terms: [x]\n    near: {terms: [y]}\n",
     "rules[1] (id 'r1'): field 'near.0.within': Field required"),
    ("  - id: r1\n    terms: [x]\n    near: {terms: [y], within: 101}\n",
     "rules[1] (id 'r1'): field 'near.0.within': Input should be less than or equal to 100"),
    ("  - id: r1\n    terms: [x]\n    near: {terms: [], within: 3}\n",
     "rules[1] (id 'r1'): field 'near.0.terms': List should have at least 1 item"),
    ("  - id: r1\n    terms: [x]\n    near: {terms: [y], within: 3, of: z}\n",
     "rules[1] (id 'r1'): field 'near.0.of': unknown key"),
    ("  - id: r1\n    terms: [{term: Tesla, in: [body]}]\n",
     "rules[1] (id 'r1'): field 'terms.0.in.0': Input should be 'title', 'summary' or 'text'"),
    ("  - id: r1\n    terms: [{term: Tesla}]\n",
     "rules[1] (id 'r1'): field 'terms.0.in': Field required"),
    ("  - id: r1\n    terms: [{term: '  ', in: [title]}]\n",
     "rules[1] (id 'r1'): field 'terms.0.term': terms must not be empty"),
    ("  - id: r1\n    terms: [x]\n    same_sentence: ['a*b']\n",
     "rules[1] (id 'r1'): field 'same_sentence': 'a*b': '*' is only allowed at the end"),
    ("  - id: r1\n    terms: [x]\n  - id: r1\n    terms: [y]\n", "field 'rules': duplicate rule id 'r1'"),
]  # fmt: skip


@pytest.mark.parametrize(("written", "expected"), ERRORS, ids=[e[1] for e in ERRORS])
def test_an_invalid_rule_is_named_by_file_rule_and_field(
    tmp_path: Path, written: str, expected: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n" + GOOD + written, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert [p for p in caught.value.problems if p.startswith(f"{path}: {expected}")]


def test_a_proximity_term_without_letters_is_named_at_compile(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: r1\n    terms: [x]\n    near: {terms: ['--'], within: 2}\n")
    with pytest.raises(ConfigError) as caught:
        compile_rules(load_rules(path), path)
    assert caught.value.problems == [
        f"{path}: rule 'r1': field 'near[0].terms': term '--' has no letters or digits"
    ]


def test_an_error_past_the_first_chunk_names_its_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    lines = [f"  - id: r{n}\n    terms: [name {n}]\n" for n in range(CHUNK + 10)]
    lines[CHUNK + 3] = f"  - id: r{CHUNK + 3}\n    terms: []\n"
    path.write_text("rules:\n" + "".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert caught.value.problems == [
        f"{path}: rules[{CHUNK + 3}] (id 'r{CHUNK + 3}'): field 'terms': "
        "List should have at least 1 item after validation, not 0"
    ]


def test_yaml_1_2_words_are_strings_in_terms_and_booleans_in_flags(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: r1\n    terms: [no, on]\n    exact: yes\n")
    [rule] = load_rules(path)
    assert rule.terms == ("no", "on") and rule.exact is True


def engine_on(path: Path, registry: CollectorRegistry, series: int = 1000) -> RulesEngine:
    return RulesEngine(
        path,
        RulesSettings(metric_rule_series=series),
        AlertStore(MEMORY),
        Metrics(registry),
    )


def test_a_reload_reads_the_new_file_without_the_old_automata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n" + GOOD, encoding="utf-8")
    engine = engine_on(path, CollectorRegistry())
    held_while_reading: list[int] = []

    def reading(rules_path: Path, previous: Sequence[Rule] = ()) -> list[Rule]:
        held_while_reading.append(len(engine.compiled.automata) + len(engine.compiled.terms))
        return load_rules(rules_path, previous)

    monkeypatch.setattr(engine_module, "load_rules", reading)
    path.write_text("rules:\n" + GOOD.replace("Tesla", "Rivian"), encoding="utf-8")
    engine.request_reload()
    assert engine.reload_if_due()
    assert held_while_reading == [0]
    alerts = engine.process(story("Rivian and Tesla"))
    assert [a.rule_id for a in alerts] == ["ok"]
    assert alerts[0].matches[0].term == "Rivian"


def test_a_reload_that_fails_to_compile_keeps_the_old_automata(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n" + GOOD, encoding="utf-8")
    engine = engine_on(path, CollectorRegistry())
    path.write_text("rules:\n  - id: ok\n    terms: ['--']\n", encoding="utf-8")
    engine.request_reload()
    assert not engine.reload_if_due()
    assert [a.rule_id for a in engine.process(story("Tesla cut prices"))] == ["ok"]


def many_rules(path: Path, count: int) -> None:
    path.write_text(
        "rules:\n" + "".join(f"  - id: r{n}\n    terms: [word{n}]\n" for n in range(count)),
        encoding="utf-8",
    )


def alerts_of(registry: CollectorRegistry, rule: str) -> float | None:
    return registry.get_sample_value("newsmon_alerts_total", {"rule": rule, "severity": "medium"})


def series_count(registry: CollectorRegistry) -> int:
    return sum(
        1
        for family in registry.collect()
        if family.name == "newsmon_alerts"
        for sample in family.samples
        if sample.name == "newsmon_alerts_total"
    )


def test_rules_under_the_cap_each_have_a_series_from_the_start(tmp_path: Path) -> None:
    path, registry = tmp_path / "rules.yaml", CollectorRegistry()
    many_rules(path, 5)
    engine_on(path, registry, series=5)
    assert [alerts_of(registry, f"r{n}") for n in range(5)] == [0.0] * 5
    assert alerts_of(registry, OTHER_RULES) is None


def test_rules_past_the_cap_count_under_other(tmp_path: Path) -> None:
    path, registry = tmp_path / "rules.yaml", CollectorRegistry()
    many_rules(path, 50)
    engine = engine_on(path, registry, series=3)
    assert series_count(registry) == 5  # _other, one per severity; no rule pre-declared
    for n in (7, 8, 9, 10, 11, 7):
        engine.process(story(f"about word{n} today", url=f"https://e.example/{n}/{id(engine)}"))
        engine.confirm_all()
    assert [alerts_of(registry, f"r{n}") for n in (7, 8, 9)] == [1.0, 1.0, 1.0]
    assert alerts_of(registry, "r10") is None and alerts_of(registry, "r11") is None
    assert alerts_of(registry, OTHER_RULES) == 2.0
    assert series_count(registry) == 5 + 3


def test_a_reload_frees_the_series_of_removed_rules(tmp_path: Path) -> None:
    path, registry = tmp_path / "rules.yaml", CollectorRegistry()
    many_rules(path, 2)
    engine = engine_on(path, registry, series=2)
    path.write_text("rules:\n  - id: r1\n    terms: [word1]\n  - id: r9\n    terms: [word9]\n")
    engine.request_reload()
    assert engine.reload_if_due()
    assert alerts_of(registry, "r0") is None
    assert alerts_of(registry, "r1") == 0.0 and alerts_of(registry, "r9") == 0.0


def test_only_large_builds_are_frozen_out_of_the_collector() -> None:
    """The console compiles a rule or two per request: that must not freeze the process's
    objects (a garbage cycle pending then would never be collected); 10,000 rules do."""
    gc.unfreeze()
    try:
        compile_rules([Rule.model_validate({"id": "r", "terms": ["Tesla"]})])
        assert gc.get_freeze_count() == 0
        compile_rules(
            [Rule.model_validate({"id": f"r{n}", "terms": [f"name{n}"]}) for n in range(FREEZE_AT)]
        )
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# Rules files read a piece at a time must mean what they mean read whole: tricky shapes
# (block scalars, multi-line and quoted strings, anchors, comments, CRLF, flow lists),
# across piece boundaries (pieces of 2 rules here).
SHAPES = {
    "plain": "rules:\n  - id: a\n    terms: [x]\n  - id: b\n    terms: [y]\n  - id: c\n    terms: [z]\n",
    "compact": "# watch list\n---\nrules:   # all of them\n- id: a\n  terms: [x]\n\n# b\n- id: b\n"
    "  terms:\n  - y\n  - {term: Y, in: [title]}\n- id: c\n  terms: [z]\n",
    "block scalar": "rules:\n  - id: a\n    name: |\n      first\n\n      # not a comment\n      - x\n"
    "    terms: [x]\n  - id: b\n    terms: [y]\n  - id: c\n    terms: [z]\n",
    "folded": "rules:\n  - id: a\n    name: one\n      two\n    terms: ['x',\n      'w']\n"
    "  - id: b\n    name: \"y\n      z\"\n    terms: [y]\n  - id: c\n    terms: [z]\n",
    "anchor in piece": "rules:\n  - id: a\n    terms: &t [x]\n  - id: b\n    terms: *t\n"
    "  - id: c\n    terms: [z]\n",
    "anchor across pieces": "rules:\n  - id: a\n    terms: &t [x]\n  - id: b\n    terms: [y]\n"
    "  - id: c\n    terms: *t\n",
    "crlf": "rules:\r\n  - id: a\r\n    terms: [x]\r\n\r\n  - id: b\r\n    terms: [y]\r\n"
    "  - id: c\r\n    terms: [z]\r\n",
    "yaml 1.2 words": "rules:\n  - id: a\n    terms: [no, on]\n    exact: yes\n  - id: b\n"
    "    terms: [y]\n    enabled: false\n  - id: c\n    terms: ['007']\n",
    "wildcard": "rules:\n  - id: a\n    terms: ['unbund*']\n  - id: b\n    terms: [y]\n"
    "  - id: c\n    terms: [z]\n",
}  # fmt: skip


def whole(path: Path) -> list[Rule] | list[str]:
    """What the loader gives for a file parsed whole (the reading before pieces)."""
    problems: list[str] = []
    data = parse_yaml(path, path.read_text(encoding="utf-8"), problems, large=True)
    rules = validate_rules(path, data, problems) if not problems else []
    return problems or rules


def loaded(path: Path) -> list[Rule] | list[str]:
    try:
        return load_rules(path)
    except ConfigError as exc:
        return exc.problems


@pytest.mark.parametrize("text", SHAPES.values(), ids=list(SHAPES))
def test_a_rules_file_read_in_pieces_means_what_it_means_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setattr(rules_module, "CHUNK", 2)
    path = tmp_path / "rules.yaml"
    path.write_bytes(text.encode())
    assert loaded(path) == whole(path)
    assert [r.id for r in load_rules(path)] == ["a", "b", "c"]


BROKEN = {
    "bad yaml in a later piece": "rules:\n  - id: a\n    terms: [x]\n  - id: b\n    terms: [y]\n"
    "  - id: c\n    terms: [z\n",
    "an item not at the items' indentation": "rules:\n  - id: a\n    terms: [x]\n  - id: b\n"
    "    terms: [y]\n - id: c\n    terms: [z]\n",
    "a key after the list": "rules:\n  - id: a\n    terms: [x]\n  - id: b\n    terms: [y]\n"
    "other: 1\n",
    "an invalid rule": "rules:\n  - id: a\n    terms: [x]\n  - id: b\n    terms: [y]\n"
    "  - id: c\n    terms: []\n",
    "an unknown anchor": "rules:\n  - id: a\n    terms: [x]\n  - id: b\n    terms: [y]\n"
    "  - id: c\n    terms: *nowhere\n",
    "a duplicate key": "rules:\n  - id: a\n    terms: [x]\n    terms: [y]\n",
}  # fmt: skip


@pytest.mark.parametrize("text", BROKEN.values(), ids=list(BROKEN))
def test_a_broken_rules_file_gets_the_errors_of_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setattr(rules_module, "CHUNK", 2)
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    problems = loaded(path)
    assert problems == whole(path)
    assert problems and all(isinstance(p, str) for p in problems)


def test_a_plain_rules_file_is_never_parsed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules_module, "CHUNK", 3)
    path = tmp_path / "rules.yaml"
    many_rules(path, 10)
    parsed: list[int] = []
    real = yaml_rs.loads

    def counting(text: str) -> object:
        items = real(text)
        parsed.append(len(items) if isinstance(items, list) else -1)
        return items

    monkeypatch.setattr(yaml_rs, "loads", counting)
    assert len(load_rules(path)) == 10
    assert parsed == [3, 3, 3, 1]


def test_a_reload_keeps_one_copy_of_the_rules_it_did_not_change(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    many_rules(path, 5)
    engine = engine_on(path, CollectorRegistry())
    before = list(engine.compiled.rules)
    changes: list[tuple[list[str], list[str]]] = []
    engine.on_reload = lambda old, new: changes.append(([r.id for r in old], [r.id for r in new]))
    path.write_text(path.read_text().replace("word3]", "word3, other]"), encoding="utf-8")
    engine.request_reload()
    assert engine.reload_if_due()
    after = engine.compiled.rules
    assert [a is b for a, b in zip(before, after, strict=True)] == [True] * 3 + [False, True]
    assert after[3].terms == ("word3", "other") and before[3].terms == ("word3",)
    assert changes == [([f"r{n}" for n in range(5)], [f"r{n}" for n in range(5)])]
    assert [a.rule_id for a in engine.process(story("word3 and other news"))] == ["r3"]


def test_shared_values_leave_each_rule_as_written(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - id: a\n    terms: [Acme]\n    notify: [chat]\n    entity_types: [org]\n"
        "  - id: b\n    name: Acme\n    terms: [Acme]\n    notify: [chat]\n"
        "  - id: c\n    terms: [Beta]\n    notify: [mail]\n    entity_types: [ORG]\n",
        encoding="utf-8",
    )
    a, b, c = load_rules(path)
    assert (a.name, b.name, c.name) == ("a", "Acme", "c")
    assert a.notify is b.notify and a.notify == ("chat",) and c.notify == ("mail",)
    assert a.entity_types == c.entity_types == ("ORG",)
    assert a.model_fields_set == {"id", "terms", "notify", "entity_types"}
    assert b.model_copy(update={"name": "x"}).name == "x" and b.name == "Acme"
    assert b.model_dump()["name"] == "Acme" and a == whole(path)[0]


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("rules:\n  - id: a\n  # c\n\n  - id: b\n    x: |\n      y\n", [7, 24]),
        ("rules:\n- id: a\n-\n  id: b", [7, 15]),
        ("rules:\n  - id: a\n other: 1\n", None),
        ("rules:\n  - id: a\nother: 1\n", None),
        ("rules:\n  - id: a\n   - id: b\n", [7]),
        ("rules:\n  - id: a\n  -id: b\n", None),
        ("rules:\n  - id: a\n\t- id: b\n", None),
        ("rules:\n  - id: a\n...\n", None),
        ("rules: []\n", None),
        ("other: 1\nrules:\n  - id: a\n", None),
    ],
)
def test_only_a_rules_key_over_a_block_sequence_is_cut_into_pieces(
    text: str, starts: list[int] | None
) -> None:
    assert item_starts(text) == starts


@pytest.mark.parametrize("term", ["--", ".*", "\u200b", "a*", "ü", "日本", "C++", "_", "3"])
@pytest.mark.parametrize("exact", [False, True])
def test_term_problems_are_the_problems_compiling_raises(term: str, exact: bool) -> None:
    rule = Rule.model_validate(
        {"id": "r", "terms": ["x"], "exact": exact, "near": {"terms": [term], "within": 2},
         "all": [{"term": term, "in": ["title"]}]}
    )  # fmt: skip
    try:
        compile_rules([rule])
        raised: list[str] = []
    except ConfigError as exc:
        raised = exc.problems
    assert term_problems([rule]) == raised


def test_a_reload_of_a_new_watch_list_lets_the_old_go_before_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.yaml"
    many_rules(path, 5)
    engine = engine_on(path, CollectorRegistry())
    checked: list[list[str]] = []
    engine.on_reload = lambda old, new: checked.append([rule.id for rule in old])
    monkeypatch.setattr(flood, "MAX_RULES", 2)  # the flood check reads the first 2 changed
    old = [weakref.ref(rule) for rule in engine.compiled.rules]
    alive_while_compiling: list[int] = []

    def compiling(rules: list[Rule], source: Path | None = None) -> CompiledRules:
        gc.collect()
        alive_while_compiling.append(sum(ref() is not None for ref in old))
        return compile_rules(rules, source)

    monkeypatch.setattr(engine_module, "compile_rules", compiling)
    path.write_text(path.read_text().replace("terms: [", "terms: [new "), encoding="utf-8")
    engine.request_reload()
    assert engine.reload_if_due()
    assert alive_while_compiling == [2]
    assert checked == [["r0", "r1"]]
    assert [a.rule_id for a in engine.process(story("new word2 today"))] == ["r2"]


def test_a_reload_whose_terms_do_not_compile_still_keeps_every_old_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    many_rules(path, 3)
    engine = engine_on(path, CollectorRegistry())
    before = list(engine.compiled.rules)
    path.write_text(path.read_text().replace("word1]", "'--']"), encoding="utf-8")
    engine.request_reload()
    assert not engine.reload_if_due()
    assert engine.compiled.rules == before
    assert [a.rule_id for a in engine.process(story("word0 and word1"))] == ["r0", "r1"]
