"""Wire contracts: JSON in and out, versions checked, schemas in docs/ kept in step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import DecodeError, SchemaError
from pipeline.models import (
    CONTRACTS,
    RawStory,
    alert_id_for,
    decode,
    json_schemas,
    story_id_for,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def raw_story() -> RawStory:
    return RawStory(
        id=story_id_for("https://example.org/a"), url="https://example.org/a", title="T",
        published=NOW, first_seen=NOW, feed="example",
    )  # fmt: skip


def test_raw_story_round_trips_as_json() -> None:
    story = raw_story()
    wire = story.to_bytes()
    assert json.loads(wire)["schema_version"] == 1
    assert decode(RawStory, wire) == story


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe", DecodeError),
        (b"{not json", DecodeError),
        (b"[1, 2]", SchemaError),
        (b'{"schema_version": 2, "id": "x"}', SchemaError),
        (b'{"schema_version": 1, "id": "x"}', SchemaError),
    ],
)
def test_bad_payloads_raise_typed_errors(payload: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(RawStory, payload)


def test_unknown_field_is_a_schema_error() -> None:
    data = json.loads(raw_story().to_bytes())
    data["surprise"] = 1
    with pytest.raises(SchemaError, match="surprise"):
        decode(RawStory, json.dumps(data).encode())


def test_naive_datetimes_are_rejected() -> None:
    data = json.loads(raw_story().to_bytes())
    data["published"] = "2026-11-28T09:30:00"
    with pytest.raises(SchemaError, match="published"):
        decode(RawStory, json.dumps(data).encode())


def test_ids_are_stable_and_distinct() -> None:
    assert story_id_for("https://a/1") == story_id_for("https://a/1")
    assert story_id_for("https://a/1") != story_id_for("https://a/2")
    assert alert_id_for("r1", "s1") == alert_id_for("r1", "s1")
    assert alert_id_for("r1", "s1") != alert_id_for("r2", "s1")


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_committed_json_schema_matches_the_code(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path} missing: run `make schemas`"
    committed = json.loads(path.read_text(encoding="utf-8"))
    assert committed == json_schemas()[name], f"{path} drifted from the code: run `make schemas`"
