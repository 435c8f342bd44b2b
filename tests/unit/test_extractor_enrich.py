"""The extractor transform: article text or summary fallback, entities, topics, metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from extraction_score import match_page
from seed import seed_page, seed_parts
from shipped import TAXONOMY

from pipeline.config import ExtractionSettings, NlpSettings
from pipeline.extractor import enrich
from pipeline.extractor.enrich import (
    Enricher,
    FetchedPage,
    PageFailed,
    PageOutcome,
    choose_text,
    is_html_type,
    normalise_language,
)
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, RawStory, story_id_for

ROOT = Path(__file__).resolve().parents[2]
PAGE_FURNITURE = (
    "Please enter", "Leave a Reply", "Trending", "Bezos", "Sunak", "Taylor Swift", "Haaland",
    "Buffett", "Sign up", "Post Comment", "All rights reserved", "Home",
)  # fmt: skip
NOW = datetime(2023, 5, 30, 12, 0, tzinfo=UTC)


def raw_story(
    url: str = "https://ledger.example/world/musk-qin",
    *,
    title: str = "Elon Musk meets Chinese foreign minister",
    summary: str = "Tesla CEO Elon Musk met Qin Gang in Beijing.",
    language: str | None = None,
    tags: list[str] | None = None,
) -> RawStory:
    return RawStory(
        id=story_id_for(url), url=url, title=title, summary=summary, published=NOW,
        first_seen=NOW, feed="ledger", tags=tags or [], language=language,
    )  # fmt: skip


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    nlp = NlpSettings(topics_file=ROOT / "configs" / "topics.yaml")
    return Enricher(nlp, ExtractionSettings(), taxonomy=TAXONOMY)


@pytest.fixture
def counted(enricher: Enricher) -> Enricher:
    """The module's models and taxonomy, with metrics of this test's own."""
    return Enricher(
        enricher.nlp_settings, ExtractionSettings(), metrics=Metrics(),
        taxonomy=enricher.taxonomy, models=enricher.models,
    )  # fmt: skip


def test_the_seed_page_yields_its_article_text_only(enricher: Enricher, shared_dir: Path) -> None:
    title, standfirst, paragraphs = seed_parts(shared_dir)
    story = enricher.enrich(raw_story(title=""), FetchedPage(seed_page(shared_dir), "text/html"))
    assert story.text_source == "full_text"
    assert story.fallback_reason is None
    assert story.title == title
    for furniture in PAGE_FURNITURE:
        assert furniture not in story.text, furniture
    counts = match_page("\n".join([standfirst, *paragraphs]), story.text)
    assert counts.precision is not None and counts.recall is not None
    assert (counts.precision, counts.recall) >= (0.98, 0.95), counts
    assert story.language == "en"


def test_the_seed_page_names_tesla_musk_and_qin(enricher: Enricher, shared_dir: Path) -> None:
    story = enricher.enrich(raw_story(title=""), FetchedPage(seed_page(shared_dir).encode()))
    found = {(e.text, e.label): e for e in story.entities}
    assert {("Tesla", "ORG"), ("Elon Musk", "PERSON"), ("Qin Gang", "PERSON")} <= set(found)
    musk, qin = found["Elon Musk", "PERSON"], found["Qin Gang", "PERSON"]
    assert "Musk" in {m.text for m in musk.mentions}, "the short mention folds into the name"
    assert qin.count >= 3
    for mention in qin.mentions:
        field = story.title if mention.field == "title" else story.text
        assert field[mention.start : mention.end] == mention.text
    names = " ".join(e.text for e in story.entities)
    assert not any(n in names for n in ("Bezos", "Sunak", "Swift", "Haaland", "Buffett"))
    assert {"diplomacy", "autos-evs"} <= {t.topic for t in story.topics}


FALLBACKS: list[tuple[PageOutcome, str]] = [
    (PageFailed("timeout", "slow"), "timeout"),
    (PageFailed("too_large", "50 MB"), "too_large"),
    (PageFailed("http_4xx", "HTTP 404"), "http_4xx"),
    (FetchedPage(b"%PDF-1.7 binary", "application/pdf"), "not_html"),
    (FetchedPage(b"\x89PNG\r\n\x1a\n", "image/png; charset=binary"), "not_html"),
    (FetchedPage(b"%PDF-1.7 \x00\x01 binary", "application/octet-stream"), "not_html"),
    (FetchedPage(b"", "text/html"), "empty"),
    (FetchedPage("<html><body><p>Subscribe to read.</p></body></html>", "text/html"), "too_short"),
]


@pytest.mark.parametrize(("outcome", "reason"), FALLBACKS)
def test_pages_that_give_no_article_fall_back_to_the_feed(
    outcome: PageOutcome, reason: str
) -> None:
    story = raw_story(summary="Tesla CEO Elon Musk met Qin Gang in Beijing.")
    chosen = choose_text(story, outcome, min_chars=200)
    assert (chosen.source, chosen.fallback_reason) == ("summary_fallback", reason)
    assert chosen.text == f"{story.title}\n\n{story.summary}"


def test_a_fallback_story_gets_entities_from_title_and_summary(enricher: Enricher) -> None:
    story = enricher.enrich(raw_story(), PageFailed("timeout"))
    assert story.text_source == "summary_fallback"
    musk = next(e for e in story.entities if e.text == "Elon Musk")
    assert {m.field for m in musk.mentions} == {"title", "summary"}
    for mention in musk.mentions:
        field = story.title if mention.field == "title" else story.summary
        assert field[mention.start : mention.end] == mention.text


def test_a_crashing_extraction_falls_back_instead_of_losing_the_story(
    enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object, **_kwargs: object) -> None:
        raise RecursionError("deeply nested page")

    monkeypatch.setattr(enrich, "extract_article", crash)
    story = enricher.enrich(raw_story(), FetchedPage("<html></html>", "text/html"))
    assert (story.text_source, story.fallback_reason) == ("summary_fallback", "extractor_error")


def test_a_story_in_a_language_without_a_model_keeps_text_and_topics(
    enricher: Enricher, shared_dir: Path
) -> None:
    page = seed_page(shared_dir).replace('lang="en-GB"', 'lang="de"')
    story = enricher.enrich(raw_story(tags=["Autos"]), FetchedPage(page, "text/html"))
    assert (story.language, story.text_source) == ("de", "full_text")
    assert story.entities == []
    assert "Qin Gang" in story.text
    assert "autos-evs" in {t.topic for t in story.topics}


def test_the_feed_language_counts_when_the_page_has_none(enricher: Enricher) -> None:
    story = enricher.enrich(raw_story(language="de-DE"), PageFailed("timeout"))
    assert (story.language, story.language_source, story.entities) == ("de", "feed", [])
    assert story.ner_model is None  # French has a model now (nlp.models); German has none


def test_a_batch_gives_one_story_per_item_in_order(enricher: Enricher, shared_dir: Path) -> None:
    outcomes: list[PageOutcome] = [
        FetchedPage(seed_page(shared_dir)),
        PageFailed("timeout"),
        FetchedPage(b"%PDF-"),
    ]
    items = [(raw_story(f"https://ledger.example/{n}"), o) for n, o in enumerate(outcomes)]
    batch = enricher.enrich_batch(items)
    assert [s.url for s in batch] == [story.url for story, _ in items]
    assert [s.text_source for s in batch] == ["full_text", "summary_fallback", "summary_fallback"]
    one_by_one = [enricher.enrich(story, outcome) for story, outcome in items]
    assert [s.entities for s in batch] == [s.entities for s in one_by_one]
    for story in batch:
        assert EnrichedStory.model_validate_json(story.to_bytes()) == story


def test_metrics_count_outcomes_durations_and_sizes(counted: Enricher, shared_dir: Path) -> None:
    items: list[tuple[RawStory, PageOutcome]] = [
        (raw_story("https://ledger.example/a"), FetchedPage(seed_page(shared_dir))),
        (raw_story("https://ledger.example/b"), PageFailed("timeout")),
    ]
    stories = counted.enrich_batch(items)
    assert counted.metrics is not None
    sample = counted.metrics.registry.get_sample_value
    assert sample("newsmon_stories_enriched_total", {"outcome": "full_text"}) == 1
    assert sample("newsmon_stories_enriched_total", {"outcome": "summary_fallback"}) == 1
    assert sample("newsmon_stories_enriched_total", {"outcome": "failed"}) == 0
    assert sample("newsmon_extraction_seconds_count") == 1
    assert sample("newsmon_ner_seconds_count") == 2
    assert sample("newsmon_story_text_chars_sum") == sum(len(s.text) for s in stories)
    assert sample("newsmon_story_entities_sum") == sum(len(s.entities) for s in stories)


@pytest.mark.parametrize(
    ("content_type", "html_like"),
    [
        ("text/html; charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("", True),
        ("text/plain", True),
        ("application/pdf", False),
        ("IMAGE/JPEG", False),
        ("video/mp4", False),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", False),
    ],
)
def test_content_types(content_type: str, html_like: bool) -> None:
    assert is_html_type(content_type) is html_like


@pytest.mark.parametrize(
    ("code", "language"),
    [("en-US", "en"), ("EN_gb", "en"), ("de", "de"), ("", None), (None, None), ("  ", None)],
)
def test_languages_are_base_codes(code: str | None, language: str | None) -> None:
    assert normalise_language(code) == language
