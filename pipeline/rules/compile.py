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

The stem automaton is built for English stems; a story in another language is
scanned with an automaton of the same terms stemmed in its language (Snowball),
or unstemmed for a language Snowball has no stemmer for (Chinese, Japanese,
Korean: their characters are words, `tokens.py`). Those are built from the rules
on the first story in that language and kept with the rules, so a deployment
that only sees English pays nothing for them.

Only keys that some rule watches (has among its `terms`) go into the automata. Keys
of `all`, `none`, `near` and `same_sentence` terms alone are *condition keys*: they
matter only for rules whose watch terms were hit, so they are looked up (`str.find`
in the same streams) for those rules alone, once per story. A watch list whose
conditions name common words would otherwise pay for every occurrence of them in
every story, however few rules they could help decide.

Large watch lists (100,000 rules) are compiled in one pass: a term string is
folded and stemmed once however many rules share it, and each automaton is
built once from (key -> the rules that watch it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, NamedTuple

import ahocorasick

from pipeline.config import Rule
from pipeline.config.rules import ScopedTerm, Term
from pipeline.config.schema import FREEZE_AT, bulk_objects
from pipeline.errors import ConfigError
from pipeline.models import TextField
from pipeline.rules.tokens import DEFAULT_STEMMING, WORD, gap_kind, stem, words

TermKind = Literal["any", "all", "none", "near", "sentence"]
Stream = Literal["surface", "stem"]


@dataclass(frozen=True, slots=True)
class TermSpec:
    """One term of one rule: what it is, where it counts, and which automaton key finds it.
    `group` is the index of its `near` condition (0 for other kinds)."""

    rule_index: int
    kind: TermKind
    group: int
    term: str
    length: int
    gaps: tuple[str, ...]
    stream: Stream
    key_id: int
    fields: tuple[TextField, ...]


class KeyEntry(NamedTuple):
    """What the automaton hands back for a key: its length, its id, and the rules that
    watch it (have it among their `terms`), so that a hit costs the same however many
    rules share the key. A tuple, so the scan loop can unpack it cheaply."""

    length: int
    key_id: int
    watchers: tuple[int, ...]


class Scanner(NamedTuple):
    """An automaton and its aliases: key ids whose terms have the same key in its language
    as another's ("unbundle" and "unbundling" in French), found wherever that one is."""

    automaton: Any
    aliases: dict[int, tuple[int, ...]]


@dataclass
class CompiledRules:
    """The live matcher: the rules in force, their terms, and the automata built from them
    (`automata["stem"]` holds English stems; other languages' are built on first need)."""

    rules: list[Rule]
    terms: list[tuple[TermSpec, ...]] = field(default_factory=list)
    automata: dict[Stream, Any] = field(default_factory=dict)
    source: Path | None = None
    conditions: dict[int, str] = field(default_factory=dict)
    """The condition keys (key id -> key, English stems or surface): in no automaton."""
    _stem_scanners: dict[str, Scanner] = field(default_factory=dict, repr=False)

    def scanner(self, stream: Stream, stemming: str) -> Scanner:
        """What scans a stream of a story stemmed as `stemming` (automaton None: no keys)."""
        if stream == "surface" or stemming == DEFAULT_STEMMING:
            return Scanner(self.automata.get(stream), {})
        if stemming not in self._stem_scanners:
            self._stem_scanners[stemming] = stem_scanner(self.terms, stemming)
        return self._stem_scanners[stemming]


def language_key(term: str, stemming: str) -> str:
    """A stem-stream term's key in a language's stems (`stemming_for`)."""
    return " " + " ".join(stem(w, stemming) for w in words(term)) + " "


def stem_scanner(terms: list[tuple[TermSpec, ...]], stemming: str) -> Scanner:
    """The stem watch keys of all rules' terms in one language: the same key ids as the
    English automaton, so hits are placed and judged alike whatever the language."""
    keys: dict[str, tuple[int, set[int], set[int]]] = {}
    done: set[int] = set()
    watchers: dict[int, set[int]] = {}
    for rule_terms in terms:
        for spec in rule_terms:
            if spec.stream == "stem" and spec.kind == "any":
                watchers.setdefault(spec.key_id, set()).add(spec.rule_index)
    for rule_terms in terms:
        for spec in rule_terms:
            if spec.stream != "stem" or spec.key_id in done or spec.key_id not in watchers:
                continue
            done.add(spec.key_id)
            key = language_key(spec.term, stemming)
            _, ids, rules = keys.setdefault(key, (len(key), set(), set()))
            ids.add(spec.key_id)
            rules.update(watchers.get(spec.key_id, ()))
    if not keys:
        return Scanner(None, {})
    automaton = ahocorasick.Automaton()
    aliases: dict[int, tuple[int, ...]] = {}
    for key, (length, ids, rules) in keys.items():
        first, *others = sorted(ids)
        automaton.add_word(key, KeyEntry(length, first, tuple(sorted(rules))))
        if others:
            aliases[first] = tuple(others)
    automaton.make_automaton()
    return Scanner(automaton, aliases)


class _Key(NamedTuple):
    """A term string compiled once: its automaton key, word count and separators."""

    stream: Stream
    key: str
    length: int
    gaps: tuple[str, ...]


_UNSEEN: Any = object()


class _Builder:
    """Keys and watchers gathered over all rules, then the automata built once."""

    def __init__(self, source: Path | None) -> None:
        self.source = source
        self.keys: dict[tuple[Stream, str], int] = {}
        self.watchers: dict[int, list[int]] = {}
        self.parsed: dict[tuple[str, bool], tuple[_Key, int] | None] = {}
        self.problems: list[str] = []
        self.conditions: dict[int, str] = {}

    def rule_terms(self, rule_index: int, rule: Rule) -> tuple[TermSpec, ...]:
        out: list[TermSpec] = []
        for kind, group, where, terms in _term_groups(rule):
            for term in terms:
                text, fields = (term, rule.fields) if isinstance(term, str) else _scoped(term)
                known = self.parsed.get((text, rule.exact), _UNSEEN)
                if known is _UNSEEN:
                    known = self.parsed[(text, rule.exact)] = self._key(text, rule.exact)
                if known is None:
                    self.problems.append(_wordless(self.source, rule, where, text))
                    continue
                parsed, key_id = known
                if kind == "any":
                    self.watchers.setdefault(key_id, []).append(rule_index)
                out.append(
                    TermSpec(rule_index, kind, group, text, parsed.length, parsed.gaps,
                             parsed.stream, key_id, fields)
                )  # fmt: skip
        return tuple(out)

    def _key(self, text: str, exact: bool) -> tuple[_Key, int] | None:
        """A term string compiled, and the id of its automaton key (shared by equal keys)."""
        parsed = _parse_term(text, exact)
        if parsed is None:
            return None
        return parsed, self.keys.setdefault((parsed.stream, parsed.key), len(self.keys))

    def automata(self) -> dict[Stream, Any]:
        """The watch keys' automata; condition keys go to `self.conditions` instead.

        Each key and its watcher list are let go of as they go into the automaton, so a
        watch list's keys are not held twice, as strings and in the trie, at the peak."""
        automata: dict[Stream, Any] = {}
        keys, self.keys = self.keys, {}
        while keys:
            (stream, key), key_id = keys.popitem()
            watchers = self.watchers.pop(key_id, None)
            if not watchers:
                self.conditions[key_id] = key
                continue
            if stream not in automata:
                automata[stream] = ahocorasick.Automaton()
            # rules are compiled in order: a key's watchers come sorted, a rule again
            # only when it names the same term twice
            entry = KeyEntry(len(key), key_id, tuple(dict.fromkeys(watchers)))
            automata[stream].add_word(key, entry)
        for automaton in automata.values():
            automaton.make_automaton()
        return automata


def compile_rules(rules: list[Rule], source: Path | None = None) -> CompiledRules:
    """Compile the enabled rules; a term with no letters or digits is a `ConfigError`."""
    enabled = [rule for rule in rules if rule.enabled]
    builder = _Builder(source)
    with bulk_objects(freeze=len(enabled) >= FREEZE_AT):
        terms = [builder.rule_terms(i, rule) for i, rule in enumerate(enabled)]
        if builder.problems:
            raise ConfigError(builder.problems)
        builder.parsed.clear()
        automata = builder.automata()
    return CompiledRules(
        rules=enabled,
        terms=terms,
        automata=automata,
        source=source,
        conditions=builder.conditions,
    )


def term_problems(rules: list[Rule], source: Path | None = None) -> list[str]:
    """The lines `compile_rules` raises for these rules (terms with no letters or digits),
    found without compiling them: a reload checks the new rules with it, then lets go of
    the old ones before it compiles the new."""
    problems = []
    for rule in rules:
        if not rule.enabled:
            continue
        for _, _, where, terms in _term_groups(rule):
            for term in terms:
                text = term if isinstance(term, str) else term.term
                if not _fold(text.removesuffix("*"))[0]:
                    problems.append(_wordless(source, rule, where, text))
    return problems


def _wordless(source: Path | None, rule: Rule, where: str, term: str) -> str:
    """The one line a term with no letters or digits gets, from compiling or the check."""
    place = f"{source or 'rules'}: rule {rule.id!r}: field '{where}'"
    return f"{place}: term {term!r} has no letters or digits"


def _term_groups(rule: Rule) -> list[tuple[TermKind, int, str, tuple[Term, ...]]]:
    """(kind, near group, the field as written, its terms) of each list of terms the rule has."""
    groups: list[tuple[TermKind, int, str, tuple[Term, ...]]] = [("any", 0, "terms", rule.terms)]
    if rule.all_terms:
        groups.append(("all", 0, "all", rule.all_terms))
    if rule.none_terms:
        groups.append(("none", 0, "none", rule.none_terms))
    if rule.same_sentence:
        groups.append(("sentence", 0, "same_sentence", rule.same_sentence))
    groups += [("near", g, f"near[{g}].terms", n.terms) for g, n in enumerate(rule.near)]
    return groups


def _scoped(term: ScopedTerm) -> tuple[str, tuple[TextField, ...]]:
    """A scoped term counts in its own `in` fields, not the rule's."""
    return term.term, term.in_fields


# A term of ASCII letters and digits and single spaces (most of a watch list): its words are
# its lower-cased text split at the spaces, with nothing between them to keep.
_PLAIN_TERM = re.compile(r"[0-9A-Za-z_]+(?: [0-9A-Za-z_]+)*")


def _fold(text: str) -> tuple[list[str], tuple[str, ...]]:
    """A term's words, folded, and the kinds of gap between them (no words: none)."""
    if _PLAIN_TERM.fullmatch(text):
        folded = text.lower().split(" ")
        return folded, ("",) * (len(folded) - 1)
    folded = words(text)
    return folded, (_term_gaps(text) if folded else ())


def _parse_term(term: str, exact: bool) -> _Key | None:
    prefix = term.endswith("*")
    folded, gaps = _fold(term.removesuffix("*"))
    if not folded:
        return None
    stream: Stream = "surface" if exact or prefix else "stem"
    forms = folded if stream == "surface" else list(map(stem, folded))
    key = " " + " ".join(forms) + ("" if prefix else " ")
    return _Key(stream, key, len(folded), gaps)


def _term_gaps(text: str) -> tuple[str, ...]:
    found = WORD.findall(text)
    if " ".join(found) == text:  # the common case: words and single spaces
        return ("",) * (len(found) - 1)
    spans = [m.span() for m in WORD.finditer(text)]
    return tuple(gap_kind(text[a[1] : b[0]]) for a, b in pairwise(spans))
