"""The extraction pool: each enriched story counted once, phases timed, config errors clear."""

from __future__ import annotations

import os
import pickle
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from shipped import TAXONOMY

from pipeline.config import ExtractionSettings, NlpSettings, Settings
from pipeline.errors import ConfigError
from pipeline.extractor.enrich import FetchedPage, PageFailed
from pipeline.extractor.pool import SPARE_WORKER_NICE, Extraction, scheduling
from pipeline.metrics import Metrics
from pipeline.models import RawStory, story_id_for

ROOT = Path(__file__).resolve().parents[2]
PAGE = (
    "<html><body><article><h1>Tesla opens a plant</h1>"
    + "<p>Elon Musk said the new plant near Shanghai would open next year.</p>" * 8
    + "</article></body></html>"
)


def story(n: int) -> RawStory:
    url = f"https://ledger.example/story/{n}"
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    return RawStory(
        id=story_id_for(url), url=url, title=f"Tesla story {n}", summary="Elon Musk spoke.",
        published=now, first_seen=now, feed="ledger",
    )  # fmt: skip


def test_in_process_extraction_counts_each_story_once_with_its_phases() -> None:
    settings = Settings(
        extraction=ExtractionSettings(workers=1),
        nlp=NlpSettings(topics_file=ROOT / "configs" / "topics.yaml"),
    )
    metrics = Metrics()
    extraction = Extraction(settings, TAXONOMY, metrics)
    try:
        enriched = extraction.enrich(
            [(story(1), FetchedPage(PAGE.encode(), "text/html")), (story(2), PageFailed("timeout"))]
        )
    finally:
        extraction.close()
    assert [s.url for s in enriched] == [story(1).url, story(2).url]
    sample = metrics.registry.get_sample_value
    counted = sum(
        sample("newsmon_stories_enriched_total", {"outcome": o}) or 0.0
        for o in ("full_text", "summary_fallback")
    )
    assert counted == 2
    assert sample("newsmon_extraction_seconds_count", {}) == 1  # the fetched page only
    assert sample("newsmon_ner_seconds_count", {}) == 2


def test_a_model_the_pool_cannot_load_is_a_config_error_not_a_broken_pool() -> None:
    settings = Settings(
        extraction=ExtractionSettings(workers=2),
        nlp=NlpSettings(
            models={"en": "no_such_model_pkg"}, topics_file=ROOT / "configs" / "topics.yaml"
        ),
    )
    with pytest.raises(ConfigError) as caught:
        Extraction(settings, TAXONOMY, Metrics())
    assert caught.value.problems == [
        "nlp.models.en: spaCy model 'no_such_model_pkg' is not installed (pip install it)"
    ]


def test_a_config_error_survives_pickling_with_its_problems() -> None:
    error = ConfigError(["a.b: wrong", "c.d: missing"])
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.problems, str(copy)) == (ConfigError, error.problems, str(error))


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")
def test_pool_processes_run_as_batch_work_and_spares_at_a_lower_priority() -> None:
    settings = Settings(
        extraction=ExtractionSettings(workers=2),
        nlp=NlpSettings(topics_file=ROOT / "configs" / "topics.yaml"),
    )
    extraction = Extraction(settings, TAXONOMY, Metrics())
    try:
        assert extraction.pool is not None
        seen: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 60
        # Two calls at a time, each holding its process a second, until both processes have
        # answered: the niced spare may wait long for a core on a busy machine (as designed).
        while len(seen) < 2 and time.monotonic() < deadline:
            calls = [extraction.pool.submit(scheduling, 1.0) for _ in range(2)]
            seen |= {call.result() for call in calls}
    finally:
        extraction.close()
    base = os.nice(0)
    assert seen == {(os.SCHED_BATCH, base), (os.SCHED_BATCH, min(base + SPARE_WORKER_NICE, 19))}
    assert scheduling() == (os.SCHED_OTHER, base)  # the calling process is left alone
