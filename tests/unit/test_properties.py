"""Bad input under load: any bytes give a clean, typed error, never a crash.

A worker that dies on one malformed record stops a partition for everyone, so
every decoder on the edge of the pipeline is driven here with arbitrary and
almost-valid input (Hypothesis). The contract checked is the one the corridor
relies on: the decoder either returns its value or raises the pipeline error
that names the problem (a dead letter with its reason, a per-feed error, a
config error naming the field). Any other exception fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_feeds, load_rules
from pipeline.errors import ConfigError, DecodeError, ExtractionRejected, FeedError
from pipeline.extractor.text import extract_article
from pipeline.models import Alert, EnrichedStory, RawStory, decode
from pipeline.poller.parse import parse_feed

# Enough examples to find the odd shape, few enough for a two-core CI run.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
RAW_FIELDS = (
    "id",
    "url",
    "title",
    "summary",
    "published",
    "first_seen",
    "feed",
    "tags",
    "language",
)


@st.composite
def near_raw_stories(draw: st.DrawFn) -> bytes:
    """A RawStory-shaped object whose fields may hold any JSON value: the hard case for a
    decoder is the record that is almost right."""
    fields = draw(st.lists(st.sampled_from(RAW_FIELDS), unique=True))
    data: dict[str, object] = {"schema_version": draw(st.sampled_from([1, 1, 2, "1", None]))}
    data.update({name: draw(JSON_VALUES) for name in fields})
    return json.dumps(data).encode()


@PROPERTY
@given(payload=st.binary(max_size=400) | near_raw_stories())
@pytest.mark.parametrize("contract", [RawStory, EnrichedStory, Alert])
def test_wire_decoders_raise_only_decode_errors(
    contract: type[RawStory | EnrichedStory | Alert], payload: bytes
) -> None:
    try:
        decode(contract, payload)
    except DecodeError as exc:
        assert str(exc)  # the reason travels in the dead letter's headers


def any_bytes_or_pieces(
    pieces: st.SearchStrategy[str], *, max_bytes: int, piece_chars: int, max_pieces: int
) -> st.SearchStrategy[bytes]:
    """Any bytes, or the format's own pieces (tags, charsets, entities) strung together with
    any text: noise finds the crashes of a decoder, almost-valid documents those of a parser."""
    soup = st.lists(pieces | st.text(max_size=piece_chars), max_size=max_pieces)
    return st.binary(max_size=max_bytes) | soup.map(lambda p: "".join(p).encode())


FEED_TAGS = st.sampled_from(
    ["<rss>", "<channel>", "<item>", "<title>", "<link>", "</item>", "<feed>", "<entry>",
     "<?xml version='1.0' encoding='utf-8'?>", "<![CDATA[", "]]>", "&amp;", "&#0;", "xml:base='/x'",
     "<link href='//x'/>", "<pubDate>", "</rss>", "\x00", "\xff"]
)  # fmt: skip


@PROPERTY
@given(body=any_bytes_or_pieces(FEED_TAGS, max_bytes=600, piece_chars=12, max_pieces=30))
def test_feed_parsing_gives_a_document_or_a_feed_error(body: bytes) -> None:
    try:
        document = parse_feed(body, url="https://feeds.example.org/rss")
    except FeedError as exc:
        assert exc.reason in {"malformed", "not_a_feed"}
    else:
        assert all(entry.title is not None for entry in document.entries)


PAGE_PARTS = st.sampled_from(
    ["<html>", "<body>", "<p>", "</p>", "<div class='related'>", "</div>", "<article>",
     "<meta charset='utf-16'>", "<meta charset='x-unknown'>", "<script>", "<!--", "-->",
     "<table><tr><td>", "<br>", "\x00", "\ufeff", "Tesla", " word " * 20]
)  # fmt: skip


@PROPERTY
@given(page=any_bytes_or_pieces(PAGE_PARTS, max_bytes=2000, piece_chars=30, max_pieces=40))
def test_page_decoding_gives_an_article_or_a_rejection(page: bytes) -> None:
    try:
        article = extract_article(page, "https://news.example.org/a", min_chars=50)
    except ExtractionRejected as exc:
        assert exc.reason
    else:
        assert len(article.text) >= 50


RULE_KEYS = st.sampled_from(
    [
        "id",
        "terms",
        "all",
        "none",
        "entity_types",
        "severity",
        "destinations",
        "sources",
        "topics",
        "throttle",
        "digest",
        "match",
        "name",
        "surprise",
    ]
)


def loads_or_names_the_file(load: Callable[[Path], object], path: Path, content: bytes) -> None:
    """`load` reads `content` from `path`, or raises a ConfigError whose every problem names
    the file (what the user is shown at start-up)."""
    path.write_bytes(content)
    try:
        load(path)
    except ConfigError as exc:
        assert exc.problems
        assert all(path.name in problem for problem in exc.problems)


@st.composite
def near_rules_files(draw: st.DrawFn) -> bytes:
    rules = draw(st.lists(st.dictionaries(RULE_KEYS, JSON_VALUES, max_size=6), max_size=3))
    return yaml.safe_dump({"rules": rules}, allow_unicode=True).encode()


@PROPERTY
@given(content=st.binary(max_size=300) | near_rules_files())
def test_rules_loader_raises_config_errors_naming_the_file(tmp_path: Path, content: bytes) -> None:
    loads_or_names_the_file(load_rules, tmp_path / "rules.yaml", content)


@PROPERTY
@given(content=st.binary(max_size=300))
def test_feeds_loader_raises_config_errors_naming_the_file(tmp_path: Path, content: bytes) -> None:
    loads_or_names_the_file(load_feeds, tmp_path / "feeds.yaml", content)


def test_a_rules_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path)
