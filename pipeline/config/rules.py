"""The schema of rules.yaml: watch rules (terms, proximity, entity types, filters, destinations,
spikes).

A term is written as a string (`Tesla`) or, to count only in some fields, as
`{term: Tesla, in: [title]}`. `near` and `same_sentence` say where a watch term
must stand relative to other terms; the matcher (`pipeline/rules/match.py`)
gives them their meaning, docs/rules.md their table of matches. `spike` turns a rule
into one that counts its matches and fires when they surge (`pipeline/rules/spike.py`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.config.feeds import parse_duration
from pipeline.config.rules_stream import NotPlain, item_starts, rule_pieces
from pipeline.config.schema import (
    FREEZE_AT,
    ID_PATTERN,
    SHAPE_TAGS,
    Section,
    bulk_objects,
    clean_term,
    describe,
    entry_name,
    known_entity_label,
    message,
    parse_yaml,
    read_text,
    reject_duplicates,
)
from pipeline.models import Severity, TextField

MAX_NEAR_WORDS = 100
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")


class ScopedTerm(Section):
    """A term that counts only in the fields named by `in` (instead of the rule's `fields`)."""

    term: str
    in_fields: tuple[TextField, ...] = Field(alias="in", min_length=1)

    _clean = field_validator("term")(clean_term)


def _term_shape(value: Any) -> str:
    return "scoped" if isinstance(value, dict | ScopedTerm) else "plain"


# One error per mistake: the shape of the entry picks how it is read.
Term = Annotated[
    Annotated[str, Tag("plain")] | Annotated[ScopedTerm, Tag("scoped")],
    Discriminator(_term_shape),
]


def term_text(term: Term) -> str:
    return term if isinstance(term, str) else term.term


def _clean_terms(terms: tuple[Term, ...]) -> tuple[Term, ...]:
    return tuple(clean_term(t) if isinstance(t, str) else t for t in terms)


ALL_FIELDS: tuple[TextField, ...] = ("title", "summary", "text")


class Near(Section):
    """A watch term counts only with one of these terms at most `within` words away."""

    terms: tuple[Term, ...] = Field(min_length=1)
    within: int = Field(ge=0, le=MAX_NEAR_WORDS, description="Words allowed between the two.")

    _terms_ok = field_validator("terms")(_clean_terms)


MINUTE, DAY = 60, 86400
MAX_SPIKE_WINDOW = 30 * DAY
MAX_BASELINE_WINDOWS = 2016  # a week of 5-minute windows: bounds a rule's count buckets


def duration_seconds(value: Any) -> int:
    """`90m`, `1h`, `7d` (or seconds) as whole seconds, read as feeds.yaml reads them."""
    seconds = parse_duration(value)
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise ValueError(f"{value!r}: a duration must be a whole number of seconds")
    return int(seconds)


class Spike(Section):
    """Fire when the matches of the last `window` run `factor` times above their mean over
    the `baseline` before it (and reach `min_count`); once per spike."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    window_seconds: int = Field(alias="window", description="The window counted, e.g. 1h.")
    baseline_seconds: int = Field(
        7 * DAY, alias="baseline", description="The span before the window its mean is taken over."
    )
    factor: float = Field(3.0, gt=1, le=1000)
    min_count: int = Field(5, ge=1)

    _durations = field_validator("window_seconds", "baseline_seconds", mode="before")(
        duration_seconds
    )

    @field_validator("window_seconds")
    @classmethod
    def _whole_minutes(cls, window: int) -> int:
        if window % MINUTE or window > MAX_SPIKE_WINDOW:
            raise ValueError("the window must be whole minutes, from 1m to 30d")
        return window

    @field_validator("baseline_seconds")
    @classmethod
    def _whole_windows(cls, baseline: int, info: ValidationInfo) -> int:
        window = info.data.get("window_seconds")
        if window is None:  # the window itself is wrong: said once, there
            return baseline
        windows, rest = divmod(baseline, window)
        if rest or not 1 <= windows <= MAX_BASELINE_WINDOWS:
            raise ValueError(
                f"the baseline must be a whole number of windows, 1 to {MAX_BASELINE_WINDOWS} "
                f"(here {baseline / window:g})"
            )
        return baseline

    @property
    def baseline_windows(self) -> int:
        return self.baseline_seconds // self.window_seconds


class Rule(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    terms: tuple[Term, ...] = Field(min_length=1)
    entity_types: tuple[str, ...] = ()
    all_terms: tuple[Term, ...] = Field((), alias="all")
    none_terms: tuple[Term, ...] = Field((), alias="none")
    near: tuple[Near, ...] = ()
    same_sentence: tuple[Term, ...] = ()
    fields: tuple[TextField, ...] = ALL_FIELDS
    sources: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    severity: Severity = "medium"
    notify: tuple[str, ...] = ()
    exact: bool = False
    enabled: bool = True
    spike: Spike | None = None

    _terms_ok = field_validator("terms", "all_terms", "none_terms", "same_sentence")(_clean_terms)

    @field_validator("near", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """`near: {terms: [...], within: 5}` is one condition; a list of them must all hold."""
        return [value] if isinstance(value, dict) else value

    @field_validator("entity_types")
    @classmethod
    def _known_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(known_entity_label(label) for label in labels)

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        """ISO 639-1 codes as stories carry them: 'en-GB' and 'EN' are 'en'."""
        out = []
        for code in codes:
            base = code.strip().replace("_", "-").split("-", 1)[0].lower()
            if not LANGUAGE_CODE.fullmatch(base):
                raise ValueError(f"{code!r} is not a language code (ISO 639-1, such as en, fr, zh)")
            out.append(base)
        return tuple(out)

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: tuple[TextField, ...]) -> tuple[TextField, ...]:
        if not value:
            raise ValueError("fields must name at least one of title, summary, text")
        return value

    @model_validator(mode="after")
    def _default_name(self) -> Rule:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self


class RulesFile(Section):
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[Rule]) -> list[Rule]:
        reject_duplicates((r.id for r in rules), "rule id")
        return rules


_RULE_LIST = TypeAdapter(list[Rule])
CHUNK = 5_000


def read_rules(path: Path, problems: list[str], previous: Sequence[Rule] = ()) -> list[Rule]:
    """The validated rules of a rules file (none if it has problems, added to `problems`).

    A file of the plain shape is parsed and validated a piece of `CHUNK` rules at a time
    (`rules_stream.py`), so that a watch list of 100,000 rules never holds its parsed YAML
    whole; any other is parsed whole. Both give the same rules and the same error lines.
    A rule equal to its version in `previous` (a reload's rules in force) is that object,
    so that a reload does not hold two copies of the rules it did not change.
    """
    lean = _Lean(previous)
    text = read_text(path, problems)
    if text is None:
        return []
    starts = item_starts(text)
    if starts:
        found: list[str] = []
        try:
            pieces = rule_pieces(text, starts, CHUNK)
            rules = _validate_pieces(path, pieces, len(starts), found, lean)
        except NotPlain:
            pass
        else:
            problems.extend(found)
            return rules
    before = len(problems)
    data = parse_yaml(path, text, problems, large=True)
    del text
    return validate_rules(path, data, problems, lean) if len(problems) == before else []


class _Lean:
    """Makes each new rule as small as it can be, and an unchanged one the rule in force.

    A one-term rule is about 800 bytes, most of them its field values' dict (464 bytes for
    17 fields). Rules get a dict that shares its keys with every other rule's (a "split"
    dict, as instances of a plain class have: 300 bytes), the record of which fields were
    given, equal tuples of names (`notify`, `sources`, ...) and a name that is its only
    term's text are shared too. Rules are frozen, so sharing cannot leak a change. A rule
    equal to its version in `previous` (the rules a reload replaces) is that object.
    """

    def __init__(self, previous: Sequence[Rule]) -> None:
        self.by_id = {rule.id: rule for rule in previous}
        self.tuples: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def __call__(self, rule: Rule) -> Rule:
        given = rule.__pydantic_fields_set__
        if self.by_id:
            old = self.by_id.get(rule.id)
            if old is not None and old.__pydantic_fields_set__ == given and old == rule:
                return old
        values = _SPLIT_DICT.copy()
        values.update(rule.__dict__)
        tuples = self.tuples
        for name, default in _SHARED_TUPLES:
            value = values[name]
            if value and value is not default:
                values[name] = tuples.setdefault(value, value)
        terms = values["terms"]
        if len(terms) == 1 and terms[0] == values["name"]:
            values["name"] = terms[0]
        _set(rule, "__dict__", values)
        shared = _FIELDS_SETS.get(given_key := frozenset(given))
        if shared is None:
            shared = _FIELDS_SETS[given_key] = set(given)
        _set(rule, "__pydantic_fields_set__", shared)
        return rule


def _split_dict(names: Iterable[str]) -> dict[str, Any]:
    """An empty-valued dict of these keys whose copies share one table of keys."""

    class Values:
        pass

    holder = Values()
    for name in names:
        setattr(holder, name, None)
    return holder.__dict__


_SPLIT_DICT = _split_dict(Rule.model_fields)
_SHARED_TUPLES = [
    (name, Rule.model_fields[name].default)
    for name in ("entity_types", "fields", "sources", "topics", "languages", "notify")
]
_set = object.__setattr__
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def validate_rules(
    path: Path,
    data: dict[str, Any],
    problems: list[str],
    lean: Callable[[Rule], Rule] | None = None,
) -> list[Rule]:
    """The rules of a parsed rules file, validated a chunk at a time.

    Each chunk's raw mappings are dropped as soon as it is validated, so a watch list of
    100,000 rules never holds its parsed YAML and all its `Rule` objects at once. Error
    lines are the same as for a whole-file validation.
    """
    before = len(problems)
    raw = data.get("rules")
    try:
        RulesFile.model_validate({**data, "rules": []})
    except ValidationError as exc:
        problems.extend(describe(path, exc, entries=raw))
    if not isinstance(raw, list):
        return []
    rules = _validate_pieces(path, _chunks_of(raw), len(raw), problems, lean or _Lean(()))
    return rules if len(problems) == before else []


def _chunks_of(raw: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    """`raw` a chunk at a time, each dropped from it once handed out."""
    for start in range(0, len(raw), CHUNK):
        chunk = raw[start : start + CHUNK]
        raw[start : start + CHUNK] = [None] * len(chunk)
        yield start, chunk


def _validate_pieces(
    path: Path,
    pieces: Iterable[tuple[int, list[Any]]],
    count: int,
    problems: list[str],
    lean: Callable[[Rule], Rule],
) -> list[Rule]:
    """The rules of (index of the first, raw entries) pieces; none if one is invalid."""
    before = len(problems)
    rules: list[Rule] = []
    with bulk_objects(freeze=count >= FREEZE_AT):
        for start, chunk in pieces:
            try:
                valid = _RULE_LIST.validate_python(chunk)
                rules.extend(map(lean, valid))
            except ValidationError as exc:
                problems.extend(_describe_chunk(path, exc, chunk, start))
            del chunk
    try:
        reject_duplicates((r.id for r in rules), "rule id")
    except ValueError as exc:
        problems.append(f"{path}: field 'rules': {exc}")
    return rules if len(problems) == before else []


def _describe_chunk(path: Path, exc: ValidationError, chunk: list[Any], start: int) -> list[str]:
    """describe()'s lines for a chunk, its entries numbered as in the whole file."""
    lines = []
    for error in exc.errors():
        index, *rest = error["loc"]
        where = f"rules[{start + int(index)}]{entry_name(chunk[int(index)])}"
        field = ".".join(str(part) for part in rest if part not in SHAPE_TAGS)
        lines.append(
            f"{path}: {where}" + (f": field '{field}'" if field else "") + f": {message(error)}"
        )
    return lines
