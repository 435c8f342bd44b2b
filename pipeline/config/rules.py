"""The schema of rules.yaml: watch rules (terms, proximity, entity types, filters, destinations).

A term is written as a string (`Tesla`) or, to count only in some fields, as
`{term: Tesla, in: [title]}`. `near` and `same_sentence` say where a watch term
must stand relative to other terms; the matcher (`pipeline/rules/match.py`)
gives them their meaning, docs/rules.md their table of matches.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from pipeline.config.schema import (
    ID_PATTERN,
    Section,
    clean_term,
    known_entity_label,
    reject_duplicates,
)
from pipeline.models import Severity, TextField

MAX_NEAR_WORDS = 100


class ScopedTerm(Section):
    """A term that counts only in the fields named by `in` (instead of the rule's `fields`)."""

    term: str
    in_fields: list[TextField] = Field(alias="in", min_length=1)

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


def _clean_terms(terms: list[Term]) -> list[Term]:
    return [clean_term(t) if isinstance(t, str) else t for t in terms]


def _all_fields() -> list[TextField]:
    return ["title", "summary", "text"]


class Near(Section):
    """A watch term counts only with one of these terms at most `within` words away."""

    terms: list[Term] = Field(min_length=1)
    within: int = Field(ge=0, le=MAX_NEAR_WORDS, description="Words allowed between the two.")

    _terms_ok = field_validator("terms")(_clean_terms)


class Rule(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    terms: list[Term] = Field(min_length=1)
    entity_types: list[str] = Field(default_factory=list)
    all_terms: list[Term] = Field(default_factory=list, alias="all")
    none_terms: list[Term] = Field(default_factory=list, alias="none")
    near: list[Near] = Field(default_factory=list)
    same_sentence: list[Term] = Field(default_factory=list)
    fields: list[TextField] = Field(default_factory=_all_fields)
    sources: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    severity: Severity = "medium"
    notify: list[str] = Field(default_factory=list)
    exact: bool = False
    enabled: bool = True

    _terms_ok = field_validator("terms", "all_terms", "none_terms", "same_sentence")(_clean_terms)

    @field_validator("near", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """`near: {terms: [...], within: 5}` is one condition; a list of them must all hold."""
        return [value] if isinstance(value, dict) else value

    @field_validator("entity_types")
    @classmethod
    def _known_labels(cls, labels: list[str]) -> list[str]:
        return [known_entity_label(label) for label in labels]

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: list[TextField]) -> list[TextField]:
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
