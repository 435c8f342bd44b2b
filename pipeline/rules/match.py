"""Story + compiled rules -> the rules that fire, with where they matched. Pure.

A story is scanned once per field and automaton, whatever the number of rules;
each automaton hit names the terms that share its key. That first pass only
notes the hits. Only rules with a hit on one of their `terms` are then looked
at, cheapest check first: the story filters (sources, topics), then their
hits are placed (char offsets, the separators of a phrase), then `none`,
`all`, and last the entity check, which asks whether the matched words lie
inside a mention of an entity of one of the rule's types (Tesla the ORG, not
Nikola Tesla the PERSON); a capitalised match in a short text (a title, a summary)
that NER left unlabelled is read from its context (`pipeline/entity_readings.py`).
So `all`/`none` terms that occur in a story cost
next to nothing for rules whose watch terms do not.

A watch-term hit counts only where its term counts (the rule's `fields`, or the
term's own `in`), and, for a rule with `near` or `same_sentence`, only with a hit of
one of those terms close by: within so many words in the same field, or in the same
sentence (`tokens.sentence_break`). Proximity is judged per hit, like entity types,
so an alert shows the hits that made the rule fire.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from pipeline.config import Rule
from pipeline.entity_readings import (
    DEFAULT_WEIGHTS,
    Labelled,
    Occurrence,
    Weights,
    is_short,
    name_words,
    read_name,
)
from pipeline.models import EnrichedStory, MatchedTerm, TextField
from pipeline.rules.compile import CompiledRules, Stream, TermSpec, language_key
from pipeline.rules.tokens import (
    DEFAULT_STEMMING,
    FieldWords,
    gap_kind,
    script_bounded,
    sentence_break,
    stemming_for,
)

FIELDS: tuple[TextField, ...] = ("title", "summary", "text")
STREAMS: tuple[Stream, ...] = ("surface", "stem")
MAX_MATCHED_TERMS = 10
# What an `entity_types` rule does on a story no NER model read (no model for its
# language): "terms" fires on its terms alone, "skip" does not fire (`rules.unread_entities`).
UnreadEntities = Literal["terms", "skip"]
_SPACES = re.compile(r"\s+")
_SPACE = ord(" ")


@dataclass(frozen=True, slots=True)
class Hit:
    """A term found in a field, at char offsets into that field; `first` and `last` are
    the indexes of its first and last word there (for `near`)."""

    spec: TermSpec
    field: TextField
    start: int
    end: int
    first: int
    last: int


@dataclass(frozen=True)
class RuleMatch:
    """A rule that fires on a story: the first hit of each of its `terms` in each field (what
    an alert shows), in field and text order."""

    rule: Rule
    hits: tuple[Hit, ...]


@dataclass
class MatchNotes:
    """What matching one story met that the host counts: rules with `entity_types` whose
    terms occur in a story no NER model read."""

    unread_entity_rules: int = 0


class _FieldScan:
    """One field's word streams, built once; places raw automaton hits in the field's text.
    Stems are the story's language's (`stemming`)."""

    def __init__(self, field: TextField, text: str, stemming: str) -> None:
        self.field = field
        self.text = text
        self.stemming = stemming
        self.words = FieldWords(text)
        self._streams: dict[Stream, str] = {}
        self._word_counts: dict[Stream, Any] = {}

    def stream(self, kind: Stream) -> str:
        if kind not in self._streams:
            words = self.words.surface if kind == "surface" else self.words.stems(self.stemming)
            self._streams[kind] = f" {words} "
        return self._streams[kind]

    def _words_before(self, kind: Stream, at: int) -> int:
        """How many words of the stream start before offset `at` (its spaces before it),
        counted once per stream: a large watch list places many hits in one field."""
        if at == 0:
            return 0
        counts = self._word_counts.get(kind)
        if counts is None:
            # one byte a character: a space is itself, any other non-ASCII one a "?"
            codes = np.frombuffer(self.stream(kind).encode("ascii", "replace"), dtype=np.uint8)
            counts = self._word_counts[kind] = np.cumsum(codes == _SPACE)
        found: int = counts.item(at - 1)
        return found

    def place(self, spec: TermSpec, at: int) -> Hit | None:
        """The hit whose key starts at stream offset `at`, if its words are separated as the
        term's are (so "Qin. Gang" is not "Qin Gang", but "US-China" is "US China") and it
        keeps to the word edges of its script (`tokens.script_bounded`)."""
        starts, ends = self.words.edges()
        first = self._words_before(spec.stream, at)
        last = first + spec.length - 1
        for k, want in enumerate(spec.gaps, start=first):
            if gap_kind(self.text[ends.item(k) : starts.item(k + 1)]) != want:
                return None
        start, end = starts.item(first), ends.item(last)
        if self.words.special and not script_bounded(self.text, start, end):
            return None
        return Hit(spec, self.field, start, end, first, last)


# Where a key was found: the field, and the offset of the key in its stream.
_Occurrences = list[tuple[_FieldScan, int]]


class _KeyHits:
    """Where each key occurs in a story: watch keys from the automata scan, condition keys
    (`CompiledRules.conditions`) looked up on first need, so only for the rules whose watch
    terms were hit."""

    def __init__(self, compiled: CompiledRules, scans: list[_FieldScan], stemming: str) -> None:
        self.scanned: defaultdict[int, _Occurrences] = defaultdict(list)
        self._conditions = compiled.conditions
        self._scans = scans
        self._stemming = stemming
        self._looked_up: dict[int, _Occurrences] = {}

    def of(self, spec: TermSpec) -> _Occurrences:
        found = self.scanned.get(spec.key_id)
        if found is not None or spec.key_id not in self._conditions:
            return found or []
        if spec.key_id not in self._looked_up:
            self._looked_up[spec.key_id] = self._look_up(spec)
        return self._looked_up[spec.key_id]

    def _look_up(self, spec: TermSpec) -> _Occurrences:
        """Every occurrence (overlapping ones too, as the automaton reports them), by field."""
        key = self._conditions[spec.key_id]
        if spec.stream == "stem" and self._stemming != DEFAULT_STEMMING:
            key = language_key(spec.term, self._stemming)
        out: _Occurrences = []
        for scan in self._scans:
            stream = scan.stream(spec.stream)
            at = stream.find(key)
            while at >= 0:
                out.append((scan, at))
                at = stream.find(key, at + 1)
        return out


def _scan(story: EnrichedStory, compiled: CompiledRules) -> tuple[_KeyHits, set[int]]:
    """(hits by key id, the rules whose watch terms were hit): one pass per field and stream."""
    candidates: set[int] = set()
    stemming = stemming_for(story.language)
    scanners = [(kind, compiled.scanner(kind, stemming)) for kind in STREAMS]
    scans = [_FieldScan(field, getattr(story, field), stemming) for field in FIELDS]
    scans = [scan for scan in scans if scan.words.surface]
    keys = _KeyHits(compiled, scans, stemming)
    found = keys.scanned
    for scan in scans:
        for kind, (automaton, _) in scanners:
            if automaton is None:
                continue
            length: int
            key_id: int
            watchers: tuple[int, ...]
            for end, (length, key_id, watchers) in automaton.iter(scan.stream(kind)):
                found[key_id].append((scan, end - length + 1))
                if watchers:
                    candidates.update(watchers)
    for _, (_, aliases) in scanners:
        for key_id, others in aliases.items():
            if key_id in found:
                found.update(dict.fromkeys(others, found[key_id]))
    return keys, candidates


def match_story(
    story: EnrichedStory,
    compiled: CompiledRules,
    *,
    readings: Weights | None = DEFAULT_WEIGHTS,
    unread_entities: UnreadEntities = "terms",
    notes: MatchNotes | None = None,
) -> list[RuleMatch]:
    """The rules that fire on the story, in rule-file order. `readings=None` judges
    `entity_types` by NER's mentions alone (no reading of unlabelled names);
    `unread_entities` says what such a rule does where no model read the story."""
    found, candidates = _scan(story, compiled)
    entities = _EntitySpans(story, readings, unread_entities)
    matches = []
    for rule_index in sorted(candidates):
        rule = compiled.rules[rule_index]
        hits = _rule_hits(rule, compiled.terms[rule_index], found, story, entities, notes=notes)
        if hits:
            matches.append(RuleMatch(rule, tuple(hits)))
    return matches


def _rule_hits(
    rule: Rule,
    terms: tuple[TermSpec, ...],
    found: _KeyHits,
    story: EnrichedStory,
    entities: _EntitySpans,
    *,
    notes: MatchNotes | None = None,
) -> list[Hit]:
    """The watch-term hits that make the rule fire, or none when a filter or condition says no."""
    if (rule.sources or rule.topics or rule.languages) and not _story_allowed(rule, story):
        return []
    if rule.entity_types and entities.unread:
        if notes is not None:
            notes.unread_entity_rules += 1
        if entities.policy == "skip":
            return []
    placed = _Placer(found)
    if rule.none_terms and any(placed.occurs(spec) for spec in terms if spec.kind == "none"):
        return []
    if rule.all_terms and not all(placed.occurs(spec) for spec in terms if spec.kind == "all"):
        return []
    accept = None
    if rule.entity_types or rule.near or rule.same_sentence:
        accept = _acceptance(rule, terms, placed, story, entities)
    hits = [hit for spec in terms if spec.kind == "any" for hit in placed.firsts(spec, accept)]
    if len(hits) < 2:  # most hits of a large watch list: one term, one field
        return hits
    return sorted(hits, key=_story_order)


def _story_allowed(rule: Rule, story: EnrichedStory) -> bool:
    """The rule's story filters (sources, topics, languages) let the story through."""
    return (
        source_allowed(rule, story) and topic_allowed(rule, story) and language_allowed(rule, story)
    )


def _story_order(hit: Hit) -> tuple[int, int, int]:
    return FIELDS.index(hit.field), hit.start, hit.end


def _acceptance(
    rule: Rule,
    terms: tuple[TermSpec, ...],
    placed: _Placer,
    story: EnrichedStory,
    entities: _EntitySpans,
) -> Callable[[Hit], bool] | None:
    """What a watch-term hit must also satisfy: entity types, then proximity (None: nothing)."""
    checks: list[Callable[[Hit], bool]] = []
    if rule.entity_types and not entities.unread:
        labels = list(rule.entity_types)
        checks.append(lambda hit: entities.covers(hit, labels))
    for group, near in enumerate(rule.near):
        specs = [s for s in terms if s.kind == "near" and s.group == group]
        checks.append(_near_check(placed, specs, near.within))
    if rule.same_sentence:
        specs = [s for s in terms if s.kind == "sentence"]
        checks.append(_sentence_check(placed, specs, story))
    if len(checks) < 2:  # most such rules have one condition: no wrapper around it
        return checks[0] if checks else None
    return lambda hit: all(check(hit) for check in checks)


def _near_check(placed: _Placer, specs: list[TermSpec], within: int) -> Callable[[Hit], bool]:
    """A hit with one of these terms at most `within` words away (in between), same field."""

    def check(hit: Hit) -> bool:
        return any(
            other.field == hit.field and 0 <= _words_between(hit, other) <= within
            for other in placed.all_of(specs)
        )

    return check


def _sentence_check(
    placed: _Placer, specs: list[TermSpec], story: EnrichedStory
) -> Callable[[Hit], bool]:
    """A hit with one of these terms in the same sentence (no sentence end between them)."""

    def check(hit: Hit) -> bool:
        text: str = getattr(story, hit.field)
        return any(
            other.field == hit.field
            and _words_between(hit, other) >= 0
            and not sentence_break(text, min(hit.end, other.end), max(hit.start, other.start))
            for other in placed.all_of(specs)
        )

    return check


def _words_between(a: Hit, b: Hit) -> int:
    """Words between two hits; -1 when they overlap (a term does not stand near itself)."""
    if a.last < b.first:
        return b.first - a.last - 1
    if b.last < a.first:
        return a.first - b.last - 1
    return -1


class _Placer:
    """A rule's raw hits placed in the text, each term in the fields where it counts."""

    def __init__(self, found: _KeyHits) -> None:
        self.found = found
        self._all: dict[int, list[Hit]] = {}

    def _placed(self, spec: TermSpec) -> Iterator[Hit]:
        for scan, at in self.found.of(spec):
            if scan.field in spec.fields:
                hit = scan.place(spec, at)
                if hit is not None:
                    yield hit

    def occurs(self, spec: TermSpec) -> bool:
        """Does the term occur at least once? (stops at the first occurrence)"""
        return next(self._placed(spec), None) is not None

    def all_of(self, specs: list[TermSpec]) -> list[Hit]:
        """Every occurrence of these terms (placed once per rule and story)."""
        out: list[Hit] = []
        for spec in specs:
            if id(spec) not in self._all:
                self._all[id(spec)] = list(self._placed(spec))
            out.extend(self._all[id(spec)])
        return out

    def firsts(self, spec: TermSpec, accept: Callable[[Hit], bool] | None) -> list[Hit]:
        """The first accepted occurrence of the term in each field: all that an alert shows,
        so a term repeated through a long text is placed only until it counts."""
        firsts: dict[str, Hit] = {}
        fields = spec.fields
        for scan, at in self.found.of(spec):
            field = scan.field
            if field in firsts or field not in fields:
                continue
            hit = scan.place(spec, at)
            if hit is not None and (accept is None or accept(hit)):
                firsts[field] = hit
        return list(firsts.values())


def source_allowed(rule: Rule, story: EnrichedStory) -> bool:
    """`sources` names feeds (as in feeds.yaml) or sites ('reuters.com' covers www.reuters.com)."""
    if not rule.sources:
        return True
    host = (urlsplit(story.url).hostname or "").casefold()
    for source in (s.casefold() for s in rule.sources):
        if source == story.feed.casefold() or host == source or host.endswith("." + source):
            return True
    return False


def language_allowed(rule: Rule, story: EnrichedStory) -> bool:
    """`languages: [en, fr]` keeps the rule to stories in those languages (a story whose
    language nobody could tell is in none of them)."""
    return not rule.languages or story.language in rule.languages


def topic_allowed(rule: Rule, story: EnrichedStory) -> bool:
    if not rule.topics:
        return True
    wanted = {t.casefold() for t in rule.topics}
    return any(t.topic.casefold() in wanted for t in story.topics)


_DETERMINER = re.compile(r"^\s*(?:the|a|an)\b", re.IGNORECASE)
_POSSESSIVE = re.compile(r"['\u2019]s?\s*$")
_AMPERSAND = re.compile(r"&\s*$")


def heads_name(prefix: str) -> bool:
    """True when the entity text before a match adds no other name word to it.

    A determiner ("The Tesla board") or a possessor ("Musk's Tesla") may precede the
    match; a capitalised word ("Nikola Tesla") makes it part of another name. A name
    joined by "&" is two names of one thing ("Procter & Gamble", "Marks & Spencer"): the
    part after it heads its own part.
    """
    rest = _DETERMINER.sub("", prefix)
    if not rest.strip() or _POSSESSIVE.search(rest) or _AMPERSAND.search(rest):
        return True
    return not any(word[:1].isupper() for word in rest.split())


_FALLBACK_JOIN = "\n\n"  # how `fallback_text` joins the title and the summary


class _EntitySpans:
    """The story's entity mentions per field, built only if a rule with entity_types needs them."""

    def __init__(
        self, story: EnrichedStory, readings: Weights | None, policy: UnreadEntities = "terms"
    ) -> None:
        self._story = story
        self._readings = readings
        self.policy = policy
        self.unread = story.entities_unread()
        self._read: dict[tuple[str, ...], str | None] = {}
        self._spans: dict[str, list[tuple[int, int, str]]] | None = None

    def covers(self, hit: Hit, labels: Sequence[str]) -> bool:
        """The hit lies in an entity of a wanted type and heads its name.

        "Tesla" in the ORG "Tesla Inc." or "Musk's Tesla" counts; in "Nikola Tesla" or
        "the Nikola Tesla Museum" (which small NER models also call ORG) it is the tail
        of another name and does not. A person's name is the exception: a surname is the
        tail of the full name, so "Ford" in the PERSON "Gerald Ford" is that person. A
        hit in no mention at all is read from its context when it is a capitalised word
        of a short text.
        """
        hit = self._in_own_field(hit)
        text: str = getattr(self._story, hit.field)
        inside = [
            (s, label)
            for s, e, label in self._index().get(hit.field, [])
            if s <= hit.start and hit.end <= e
        ]
        if not inside:
            return self._reads_as(hit, text, labels)
        return any(
            label in labels and (label == "PERSON" or heads_name(text[s : hit.start]))
            for s, label in inside
        )

    def _in_own_field(self, hit: Hit) -> Hit:
        """On a summary fallback the text is the title and the summary joined
        (`fallback_text`); NER placed its mentions in those two fields, so a hit in the
        text is judged where its words came from, as a hit there would be."""
        story = self._story
        if hit.field != "text" or story.text_source != "summary_fallback":
            return hit
        title, summary = story.title.strip(), story.summary.strip()
        if title and hit.end <= len(title):
            shift = story.title.find(title)
            return replace(hit, field="title", start=hit.start + shift, end=hit.end + shift)
        summary_start = len(title) + len(_FALLBACK_JOIN) if title else 0
        if summary and hit.start >= summary_start:
            shift = story.summary.find(summary) - summary_start
            return replace(hit, field="summary", start=hit.start + shift, end=hit.end + shift)
        return hit

    def _reads_as(self, hit: Hit, text: str, labels: Sequence[str]) -> bool:
        """An unlabelled name in a title or a summary, read as the story supports: the small
        model often gives a name no label in one short sentence ("Ford and its rivals cut
        prices"), while in a whole article a name it leaves unlabelled is seldom one."""
        if self._readings is None or hit.field not in self._short_fields():
            return False
        if not text[hit.start : hit.start + 1].isupper():
            return False
        words = name_words(text[hit.start : hit.end])
        if words not in self._read:
            self._read[words] = self._reading(words, self._readings)
        return self._read[words] in labels

    def _short_fields(self) -> tuple[TextField, ...]:
        """The short texts NER read, where a name it left unlabelled may be read from
        context: the title, and the summary when it stands in for the article. With the
        full text, NER reads the title and the text, not the feed's summary: a name there
        has no mention because NER never looked, and is judged in the text instead. (On a
        fallback the text is the title and the summary again: see `_in_own_field`.)"""
        if self._story.text_source == "summary_fallback":
            return ("title", "summary")
        return ("title",)

    def _reading(self, words: tuple[str, ...], weights: Weights) -> str | None:
        """One reading per name and story: the label NER gave the same name elsewhere in the
        story, else what all its unlabelled capitalised occurrences say together."""
        for entity in self._story.entities:
            if name_words(entity.text) == words:
                return entity.label.upper()
        pattern = re.compile(r"\b" + r"\W+".join(map(re.escape, words)) + r"\b", re.IGNORECASE)
        fields = self._short_fields()
        occurrences = [
            Occurrence(
                text,
                m.start(),
                m.end(),
                None,
                spans,
                is_short(short_as, text),
                following,
                spans,
                then,
            )
            for n, field in enumerate(fields)
            for text, spans in [self._field_spans(field)]
            for short_as in ["title" if field == "title" else "summary"]
            for following in [self._following(fields, n)]
            for then in [self._field_spans(fields[n + 1])[1] if following else []]
            for m in pattern.finditer(text)
            if text[m.start()].isupper()
        ]
        names = [(name_words(e.text), e.label.upper()) for e in self._story.entities]
        return read_name(occurrences, names, weights=weights) if occurrences else None

    def _following(self, fields: Sequence[TextField], n: int) -> str:
        """The text read after a title (on a fallback, the summary), as the extractor's
        reader sees it: its opening sentence may say what the title's name is."""
        if fields[n] != "title" or n + 1 >= len(fields):
            return ""
        return str(getattr(self._story, fields[n + 1]))

    def _field_spans(self, field: TextField) -> tuple[str, list[Labelled]]:
        spans = self._index().get(field, [])
        return getattr(self._story, field), [Labelled(s, e, label) for s, e, label in spans]

    def _index(self) -> dict[str, list[tuple[int, int, str]]]:
        if self._spans is None:
            self._spans = defaultdict(list)
            for entity in self._story.entities:
                for m in entity.mentions:
                    self._spans[m.field].append((m.start, m.end, entity.label.upper()))
        return self._spans


def matched_terms(match: RuleMatch, story: EnrichedStory, width: int) -> list[MatchedTerm]:
    """The first hit of each term in each field, with a snippet that marks it."""
    seen: set[tuple[str, str]] = set()
    terms = []
    for hit in match.hits:
        if (hit.spec.term, hit.field) in seen:
            continue
        seen.add((hit.spec.term, hit.field))
        text = getattr(story, hit.field)
        terms.append(
            MatchedTerm(
                term=hit.spec.term,
                field=hit.field,
                matched_text=text[hit.start : hit.end],
                snippet=snippet(text, hit.start, hit.end, width),
            )
        )
    return terms[:MAX_MATCHED_TERMS]


def snippet(text: str, start: int, end: int, width: int) -> str:
    """About `width` chars around text[start:end], cut between words, the match marked **so**."""
    side = max((width - (end - start)) // 2, 10)
    a, b = max(0, start - side), min(len(text), end + side)
    left, right = _SPACES.sub(" ", text[a:start]), _SPACES.sub(" ", text[end:b])
    if a > 0 and not text[a - 1].isspace():
        left = left[left.find(" ") + 1 :] if " " in left else left
    if b < len(text) and not text[b].isspace():
        right = right[: right.rfind(" ")] if " " in right else right
    marked = f"{left}**{_SPACES.sub(' ', text[start:end])}**{right}".strip()
    return ("…" if a > 0 else "") + marked + ("…" if b < len(text) else "")


# -- why a rule fired or did not (the console's story page) ------------------------------


@dataclass(frozen=True)
class Verdict:
    """A rule whose watch terms occur in a story: it fired (`hits` are the alert's), or it
    came close (`hits` are where its terms occur, `reasons` the checks that said no)."""

    rule: Rule
    fired: bool
    hits: tuple[Hit, ...]
    reasons: tuple[str, ...] = ()


def explain_story(
    story: EnrichedStory,
    compiled: CompiledRules,
    *,
    readings: Weights | None = DEFAULT_WEIGHTS,
    unread_entities: UnreadEntities = "terms",
) -> list[Verdict]:
    """Every rule with a watch term in the story, in rule-file order, with the same checks
    `match_story` makes (the same scan, placing, entity test and readings), so a verdict
    here is the verdict the rules stage reached."""
    found, candidates = _scan(story, compiled)
    entities = _EntitySpans(story, readings, unread_entities)
    verdicts = []
    for rule_index in sorted(candidates):
        rule, terms = compiled.rules[rule_index], compiled.terms[rule_index]
        placed = _Placer(found)
        watched = [hit for spec in terms if spec.kind == "any" for hit in placed.firsts(spec, None)]
        if not watched:
            continue
        hits = _rule_hits(rule, terms, found, story, entities)
        if hits:
            verdicts.append(Verdict(rule, True, tuple(hits)))
            continue
        ordered = sorted(watched, key=lambda h: (FIELDS.index(h.field), h.start, h.end))
        reasons = _refusals(rule, terms, placed, story, entities=entities, watched=ordered)
        verdicts.append(Verdict(rule, False, tuple(ordered), tuple(reasons)))
    return verdicts


def _refusals(
    rule: Rule,
    terms: tuple[TermSpec, ...],
    placed: _Placer,
    story: EnrichedStory,
    *,
    entities: _EntitySpans,
    watched: list[Hit],
) -> list[str]:
    """Each check of `_rule_hits` that failed, in words."""
    reasons = []
    if not source_allowed(rule, story):
        reasons.append(f"sources: the feed {story.feed!r} is not one of {', '.join(rule.sources)}")
    if not topic_allowed(rule, story):
        reasons.append(f"topics: the story has none of {', '.join(rule.topics)}")
    if not language_allowed(rule, story):
        said = story.language or "not known"
        reasons.append(
            f"languages: the story's language ({said}) is not {', '.join(rule.languages)}"
        )
    if rule.entity_types and entities.unread and entities.policy == "skip":
        reasons.append(
            f"entity_types: no NER model for the story's language ({story.language}), "
            "and rules.unread_entities is skip"
        )
    reasons += [f"none: {s.term!r} occurs" for s in terms if s.kind == "none" and placed.occurs(s)]
    reasons += [
        f"all: {s.term!r} does not occur" for s in terms if s.kind == "all" and not placed.occurs(s)
    ]
    if (
        rule.entity_types
        and not entities.unread
        and not any(entities.covers(h, rule.entity_types) for h in watched)
    ):
        types = ", ".join(rule.entity_types)
        reasons.append(f"entity_types: no match lies in a {types} entity")
    if not reasons and (rule.near or rule.same_sentence):
        reasons.append("near / same_sentence: no watch term stood close enough to its partners")
    return reasons
