"""All rules compiled into one matcher.

Every watch term of every enabled rule becomes a key in one of two Aho-Corasick
automata over a story's word stream: the *stem* automaton (inflection-aware
terms, keyed by their stems) and the *surface* automaton (`exact: true` terms
and `prefix*` wildcards, keyed by their case-folded words). A story is scanned
once per automaton and field whatever the number of rules, so 10,000 rules cost
about what 10 do; only the terms that actually occur cost anything more.

Keys are words joined and framed by single spaces (" qin gang "), run against a
stream framed the same way, so a key can only start and end on word
boundaries. A wildcard key drops its closing space (" unbund"), which lets its
last word run on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, NamedTuple

import ahocorasick

from pipeline.config import Rule
from pipeline.errors import ConfigError
from pipeline.rules.tokens import WORD, gap_kind, stem, words

TermKind = Literal["any", "all", "none"]
Stream = Literal["surface", "stem"]

_KIND_FIELDS: dict[TermKind, str] = {"any": "terms", "all": "all", "none": "none"}


@dataclass(frozen=True, slots=True)
class TermSpec:
    """One term of one rule: what it is, and which automaton key finds it."""

    rule_index: int
    kind: TermKind
    index: int
    term: str
    length: int
    gaps: tuple[str, ...]
    stream: Stream
    key_id: int


class KeyEntry(NamedTuple):
    """What the automaton hands back for a key: its length, its id, and the rules that
    watch it (have it among their `terms`), so that a hit costs the same however many
    rules share the key. A tuple, so the scan loop can unpack it cheaply."""

    length: int
    key_id: int
    watchers: tuple[int, ...]


@dataclass
class CompiledRules:
    """The live matcher: the rules in force, their terms, and the automata built from them."""

    rules: list[Rule]
    terms: list[tuple[TermSpec, ...]] = field(default_factory=list)
    automata: dict[Stream, Any] = field(default_factory=dict)
    source: Path | None = None


def compile_rules(rules: list[Rule], source: Path | None = None) -> CompiledRules:
    """Compile the enabled rules; a term with no letters or digits is a `ConfigError`."""
    enabled = [rule for rule in rules if rule.enabled]
    keys: dict[tuple[Stream, str], int] = {}
    problems: list[str] = []
    terms = [_rule_terms(i, rule, keys, source, problems) for i, rule in enumerate(enabled)]
    if problems:
        raise ConfigError(problems)
    automata = _automata(keys, terms)
    return CompiledRules(rules=enabled, terms=terms, automata=automata, source=source)


def _rule_terms(
    rule_index: int,
    rule: Rule,
    keys: dict[tuple[Stream, str], int],
    source: Path | None,
    problems: list[str],
) -> tuple[TermSpec, ...]:
    out = []
    groups: tuple[tuple[TermKind, list[str]], ...] = (
        ("any", rule.terms), ("all", rule.all_terms), ("none", rule.none_terms),
    )  # fmt: skip
    for kind, terms in groups:
        for index, term in enumerate(terms):
            spec = _compile_term(rule_index, rule, (kind, index, term), keys)
            if spec is None:
                where = f"{source or 'rules'}: rule {rule.id!r}: field '{_KIND_FIELDS[kind]}'"
                problems.append(f"{where}: term {term!r} has no letters or digits")
                continue
            out.append(spec)
    return tuple(out)


def _compile_term(
    rule_index: int,
    rule: Rule,
    which: tuple[TermKind, int, str],
    keys: dict[tuple[Stream, str], int],
) -> TermSpec | None:
    """`which` is (kind, index in its list, the term as written)."""
    kind, index, term = which
    prefix = term.endswith("*")
    text = term.removesuffix("*")
    folded = words(text)
    if not folded:
        return None
    stream: Stream = "surface" if rule.exact or prefix else "stem"
    forms = folded if stream == "surface" else [stem(w) for w in folded]
    key = " " + " ".join(forms) + ("" if prefix else " ")
    key_id = keys.setdefault((stream, key), len(keys))
    return TermSpec(rule_index, kind, index, term, len(folded), _term_gaps(text), stream, key_id)


def _term_gaps(text: str) -> tuple[str, ...]:
    spans = [m.span() for m in WORD.finditer(text)]
    return tuple(gap_kind(text[a[1] : b[0]]) for a, b in pairwise(spans))


def _automata(
    keys: dict[tuple[Stream, str], int], terms: list[tuple[TermSpec, ...]]
) -> dict[Stream, Any]:
    watchers: dict[int, set[int]] = {}
    for spec in (s for rule_terms in terms for s in rule_terms):
        if spec.kind == "any":
            watchers.setdefault(spec.key_id, set()).add(spec.rule_index)
    automata: dict[Stream, Any] = {}
    for (stream, key), key_id in keys.items():
        if stream not in automata:
            automata[stream] = ahocorasick.Automaton()
        entry = KeyEntry(len(key), key_id, tuple(sorted(watchers.get(key_id, ()))))
        automata[stream].add_word(key, entry)
    for automaton in automata.values():
        automaton.make_automaton()
    return automata
