"""The schema of topics.yaml: the topic taxonomy the extractor tags stories with.

It is read and validated with the other files when the config loads (so
`newsmon check-config` and every command's start catch a broken taxonomy), and the
validated `TaxonomyFile` travels down with the config; the extractor compiles it
(`pipeline.extractor.topics.compile_taxonomy`) without reading a file itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.config.schema import (
    ID_PATTERN,
    Section,
    describe,
    known_entity_label,
    read_yaml,
    reject_duplicates,
)
from pipeline.errors import ConfigError


class Topic(Section):
    """One entry of topics.yaml."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    terms: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list, description="Names NER must find.")
    entity_labels: dict[str, float] = Field(
        default_factory=dict, description="Label -> evidence per entity of that label."
    )
    categories: list[str] = Field(default_factory=list, description="Feed categories meaning it.")

    @field_validator("terms", "entities", "categories")
    @classmethod
    def _no_blank(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values]
        if any(not v or v == "*" for v in cleaned):
            raise ValueError("entries must not be empty")
        if any("*" in v[:-1] for v in cleaned):
            raise ValueError("'*' is only allowed at the end of a term")
        return cleaned

    @field_validator("entity_labels")
    @classmethod
    def _known_labels(cls, labels: dict[str, float]) -> dict[str, float]:
        for label, weight in labels.items():
            known_entity_label(label)
            if not 0 < weight <= 10:
                raise ValueError(f"weight of {label!r} must be in (0, 10]")
        return {label.upper(): weight for label, weight in labels.items()}

    @model_validator(mode="after")
    def _some_evidence(self) -> Topic:
        if not (self.terms or self.entities or self.entity_labels or self.categories):
            raise ValueError("a topic needs terms, entities, entity_labels or categories")
        return self


class TaxonomyFile(Section):
    min_score: float = Field(0.3, ge=0, le=1, description="Lower scores are not tagged.")
    max_topics: int = Field(5, ge=1, description="At most this many topics per story.")
    saturation: float = Field(6.0, gt=0, description="Evidence that scores 0.5.")
    topics: list[Topic] = Field(min_length=1)

    @field_validator("topics")
    @classmethod
    def _unique_ids(cls, topics: list[Topic]) -> list[Topic]:
        reject_duplicates((t.id for t in topics), "topic id")
        return topics


def read_taxonomy(path: Path, problems: list[str]) -> TaxonomyFile | None:
    """topics.yaml validated, or None with the reasons added to `problems`."""
    before = len(problems)
    data = read_yaml(path, problems, what="nlp.topics_file")
    if len(problems) > before:
        return None
    try:
        return TaxonomyFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(describe(path, exc, data.get("topics")))
        return None


def load_taxonomy_file(path: Path) -> TaxonomyFile:
    """topics.yaml alone (tests, tools); a `ConfigError` names the file, the topic and the field."""
    problems: list[str] = []
    parsed = read_taxonomy(path, problems)
    if parsed is None:
        raise ConfigError(problems)
    return parsed
