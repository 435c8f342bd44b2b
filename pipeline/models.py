"""The wire contracts: what travels between stages, on Kafka or in process.

Every message is JSON (readable with any console consumer), carries a
`schema_version`, and is keyed on the wire by its story id. A consumer that meets
a version it does not know raises `SchemaError` and the record is dead-lettered
rather than half-understood.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import DecodeError, SchemaError

SCHEMA_VERSION = 1

TextSource = Literal["full_text", "summary_fallback"]
Severity = Literal["info", "low", "medium", "high", "critical"]
TextField = Literal["title", "summary", "text"]
# How a story's language was decided: declared by the page or the feed, detected from the
# text, or assumed (the configured default).
LanguageSource = Literal["page", "feed", "detected", "default"]
NonEmpty = Annotated[str, Field(min_length=1)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def story_id_for(key: str) -> str:
    """The canonical link (or guid) hashed, so every replica derives the same id."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class Contract(BaseModel):
    """Base of the wire messages: frozen, strict about unknown fields, JSON in and out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class RawStory(Contract):
    """One feed entry, normalised by the poller."""

    schema_version: Literal[1] = 1
    id: NonEmpty = Field(description="Stable story id (hash of the canonical link or guid).")
    url: NonEmpty = Field(description="Canonical link: tracking parameters and fragment removed.")
    title: str = ""
    summary: str = Field("", description="Feed summary as plain text.")
    published: AwareDatetime = Field(description="Publication time in UTC (first seen if absent).")
    first_seen: AwareDatetime = Field(description="When a poller first saw the story.")
    feed: NonEmpty = Field(description="Name of the feed that carried the story.")
    feed_url: str = ""
    guid: str | None = None
    tags: list[str] = Field(default_factory=list, description="Feed tags and entry categories.")
    language: str | None = None


class Mention(Contract):
    field: TextField = "text"
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class Entity(Contract):
    """One named entity of a story, with short mentions folded into the full name."""

    text: NonEmpty = Field(description="Canonical form, e.g. 'Elon Musk' for 'Musk'.")
    label: NonEmpty = Field(description="spaCy label: ORG, PERSON, GPE, ...")
    count: int = Field(ge=1)
    first_position: int = Field(ge=0, description="Char offset of the first mention in its field.")
    mentions: list[Mention] = Field(default_factory=list)


class TopicScore(Contract):
    topic: NonEmpty
    score: float = Field(ge=0.0, le=1.0)


class EnrichedStory(Contract):
    """A story with its article text, entities and topics."""

    schema_version: Literal[1] = 1
    id: NonEmpty
    url: NonEmpty
    title: str = ""
    summary: str = ""
    text: str = Field("", description="Main article text, or title and summary on fallback.")
    text_source: TextSource
    fallback_reason: str | None = Field(
        None, description="Why the page text was not used (timeout, not_html, too_short, ...)."
    )
    author: str | None = None
    language: str | None = Field(None, description="ISO 639-1 code of the story's language.")
    language_source: LanguageSource | None = Field(
        None,
        description="How the language was decided (page, feed, detected, default); null in "
        "stories enriched before newsmon recorded it.",
    )
    ner_model: str | None = Field(
        None,
        description="The spaCy model that read the entities; null when no model is configured "
        "for the story's language (then `entities` is empty because nothing looked).",
    )
    published: AwareDatetime
    first_seen: AwareDatetime
    enriched_at: AwareDatetime
    feed: NonEmpty
    tags: list[str] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    topics: list[TopicScore] = Field(default_factory=list)

    def entities_unread(self) -> bool:
        """No NER model read this story (none for its language), so an empty `entities` says
        nothing. Stories from before `ner_model` was recorded were read (English)."""
        return self.language_source is not None and self.ner_model is None


class AlertStory(Contract):
    id: NonEmpty
    url: NonEmpty
    title: str = ""
    source: str = Field(description="The feed that carried the story.")
    published: AwareDatetime


class MatchedTerm(Contract):
    term: NonEmpty = Field(description="The rule term that matched.")
    field: TextField
    matched_text: str = Field(description="The text as it appears in the story.")
    snippet: str = Field(description="Context around the match, the match marked with **...**.")


class SpikeCounts(Contract):
    """Why a spike rule fired: its matches in the window against the baseline's mean."""

    window_start: AwareDatetime
    window_end: AwareDatetime = Field(description="Time of the newest story counted.")
    window_seconds: int = Field(gt=0)
    baseline_seconds: int = Field(gt=0, description="The span before the window.")
    window_count: int = Field(ge=0, description="Stories the rule matched in the window.")
    baseline_mean: float = Field(ge=0, description="Mean count per window over the baseline.")
    factor: float = Field(gt=0, description="The rule's factor: fires at factor x mean.")
    min_count: int = Field(ge=1)
    headlines: list[AlertStory] = Field(
        default_factory=list, description="A few stories of the window, newest first."
    )


class Alert(Contract):
    """A rule fired on a story (or, for `kind: digest`, on many stories of a throttled rule;
    for `kind: spike`, on a surge of stories, with `spike` saying how many)."""

    schema_version: Literal[1] = 1
    alert_id: NonEmpty = Field(
        description="Deterministic: the same story and rule give the same id."
    )
    kind: Literal["alert", "digest", "spike"] = "alert"
    rule_id: NonEmpty
    rule_name: str
    severity: Severity = "medium"
    notify: list[str] = Field(default_factory=list, description="Destination ids; empty = all.")
    story: AlertStory
    matches: list[MatchedTerm] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    topics: list[TopicScore] = Field(default_factory=list)
    digest: list[AlertStory] = Field(
        default_factory=list, description="For digests: the stories the throttled rule matched."
    )
    spike: SpikeCounts | None = Field(
        None, description="For spikes: the counts and a few headlines (absent otherwise)."
    )

    def to_bytes(self) -> bytes:
        """Without `spike` unless it is one: other alerts keep the bytes (and the schema) they
        had before spikes existed, so receivers and older consumers read them as before."""
        if self.spike is None:
            return self.model_dump_json(exclude={"spike"}).encode("utf-8")
        return super().to_bytes()

    first_seen: AwareDatetime
    raised_at: AwareDatetime


def alert_id_for(rule_id: str, story_id: str) -> str:
    return hashlib.sha256(f"{rule_id}\x00{story_id}".encode()).hexdigest()[:32]


M = TypeVar("M", bound=Contract)

CONTRACTS: dict[str, type[Contract]] = {
    "RawStory": RawStory,
    "EnrichedStory": EnrichedStory,
    "Alert": Alert,
}


def decode(model: type[M], payload: bytes | str) -> M:
    """Parse wire bytes into a contract; `DecodeError` for bad JSON, `SchemaError` for bad shape."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"{model.__name__}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(f"{model.__name__}: unsupported schema_version {version!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SchemaError(f"{model.__name__}.{where}: {first['msg']}") from exc


def json_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in CONTRACTS.items()}


def write_json_schemas(out_dir: Path) -> list[Path]:
    """Write one `<Name>.schema.json` per contract; the test suite fails when these drift."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
