"""The schema of rules.yaml: watch rules (terms, entity types, filters, destinations)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator, model_validator

from pipeline.config.schema import (
    ID_PATTERN,
    Section,
    clean_terms,
    known_entity_label,
    reject_duplicates,
)
from pipeline.models import Severity, TextField

Term = str


def _all_fields() -> list[TextField]:
    return ["title", "summary", "text"]


class Rule(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    terms: list[Term] = Field(min_length=1)
    entity_types: list[str] = Field(default_factory=list)
    all_terms: list[Term] = Field(default_factory=list, alias="all")
    none_terms: list[Term] = Field(default_factory=list, alias="none")
    fields: list[TextField] = Field(default_factory=_all_fields)
    sources: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    severity: Severity = "medium"
    notify: list[str] = Field(default_factory=list)
    exact: bool = False
    enabled: bool = True

    _terms_ok = field_validator("terms", "all_terms", "none_terms")(clean_terms)

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
