"""`newsmon enrich`: JSON lines in, one enriched line per valid input, in order."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from shipped import TAXONOMY

from pipeline.config import ExtractionSettings, NlpSettings
from pipeline.errors import DecodeError
from pipeline.extractor.enrich import Enricher
from pipeline.extractor.offline import enrich_stream, parse_line

ROOT = Path(__file__).resolve().parents[2]
PARAGRAPHS = (
    "Tesla chief executive Elon Musk met the Chinese foreign minister Qin Gang in Beijing on "
    "Tuesday, where the two discussed electric vehicles and trade.",
    "Qin told Musk that relations between the two countries needed mutual respect, according "
    "to a statement from the ministry.",
    "Musk said Tesla was willing to expand its operations in China, where it opened its first "
    "factory outside the United States in 2019.",
)
ARTICLE = (
    "<html lang='en'><body><article>"
    + "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    + "</article></body></html>"
)


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(
        NlpSettings(topics_file=ROOT / "configs" / "topics.yaml"),
        ExtractionSettings(),
        taxonomy=TAXONOMY,
    )


def _line(**fields: object) -> str:
    return json.dumps(fields) + "\n"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (_line(html="<p>x</p>"), "'url' is missing"),
        (_line(url="  ", html="<p>x</p>"), "'url' is empty"),
        (_line(url="https://a.example/1"), "'html' is missing"),
        (_line(url="https://a.example/1", html=7), "'html' must be a string, got int"),
        (_line(url="https://a.example/1", html="", tags="x"), "'tags' must be a list"),
    ],
)
def test_invalid_lines_say_what_is_wrong(line: str, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        parse_line(line)


def test_every_valid_line_gives_one_output_line_in_order(enricher: Enricher) -> None:
    lines = [
        _line(url="https://a.example/1", html=ARTICLE, title="Musk in Beijing"),
        "{broken\n",
        "\n",
        _line(url="https://a.example/2", html="", title="Only a title", summary="Qin Gang spoke."),
        _line(url="https://a.example/3", html=ARTICLE, tags=["Autos"], language="en-US"),
        _line(url="https://a.example/4"),
    ]
    out, errors = io.StringIO(), io.StringIO()
    assert enrich_stream(enricher, lines, out, errors, batch_size=2) == (3, 2)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["url"] for r in results] == [f"https://a.example/{n}" for n in (1, 2, 3)]
    for result in results:
        assert {"url", "title", "text", "text_source", "language", "entities", "topics"} <= set(
            result
        )
        assert all({"text", "label"} <= set(e) for e in result["entities"])
    first, second, third = results
    assert first["text_source"] == "full_text" and "Qin Gang" in first["text"]
    assert {"Elon Musk", "Qin Gang", "Tesla"} <= {e["text"] for e in first["entities"]}
    assert (second["text_source"], second["fallback_reason"]) == ("summary_fallback", "empty")
    assert second["text"] == "Only a title\n\nQin Gang spoke."
    assert third["language"] == "en" and "autos-evs" in {t["topic"] for t in third["topics"]}
    reported = errors.getvalue().splitlines()
    assert [r.split(":")[0:2] for r in reported] == [
        ["newsmon enrich", " line 2"],
        ["newsmon enrich", " line 6"],
    ]
