"""`newsmon run` settles records as the Kafka workers do (issue 12's drift, fixed toward them):
a record that cannot be read is dead-lettered; a broken extraction pool stops the run instead,
and the stories stay queued."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.extractor.enrich import Enriched
from pipeline.extractor.pool import Items
from pipeline.local import RAW, LocalPipeline
from pipeline.metrics import Metrics
from pipeline.models import RawStory, story_id_for

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def local_pipeline(folder: Path, metrics: Metrics) -> Iterator[LocalPipeline]:
    """The pipeline of `newsmon run` with the shipped config, one closed feed, one enrichment
    process; stepped by the test, closed on the way out."""
    feeds = folder / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: http://127.0.0.1:9/feed.xml\n    name: local\n")
    config = load_config(
        ROOT / "configs" / "newsmon.yaml", feeds, ROOT / "configs" / "rules.yaml", folder,
        overrides={"extraction": {"workers": 1}},
    )  # fmt: skip
    done = threading.Event()
    done.set()
    pipeline = LocalPipeline(config, metrics, threading.Event())
    try:
        yield pipeline
    finally:
        pipeline.close(done)


def test_an_undecodable_raw_story_is_dead_lettered_and_counted_as_on_kafka(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    with local_pipeline(tmp_path, metrics) as pipeline:
        pipeline.queue.put(RAW, [("poison", b"\xff not a story")])
        for _ in range(3):
            pipeline.step()
        [dead] = pipeline.queue.dead_letters()
        assert (dead.key, dead.payload, dead.reason) == ("poison", b"\xff not a story", "decode")
        assert pipeline.queue.pending(RAW) == 0

    def count(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert count("newsmon_stage_errors_total", stage="extractor", reason="decode") == 1
    assert count("newsmon_dead_letters_total", stage="extractor", reason="decode") == 1
    assert count("newsmon_stories_enriched_total", outcome="failed") == 1
    assert pipeline.report.dead_letters == 1


def broken(items: Items) -> Future[Enriched]:
    failed: Future[Enriched] = Future()
    failed.set_exception(BrokenProcessPool("a pool process was killed"))
    return failed


def test_a_broken_pool_stops_the_run_and_dead_letters_nothing(tmp_path: Path) -> None:
    with local_pipeline(tmp_path, Metrics()) as pipeline:
        pipeline.extraction.submit = broken  # type: ignore[method-assign]
        url = "http://127.0.0.1:9/story"
        now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        pipeline.publish([
            RawStory(id=story_id_for(url), url=url, title="Tesla", published=now,
                     first_seen=now, feed="local"),
        ])  # fmt: skip
        with pytest.raises(BrokenProcessPool):
            for _ in range(3):
                pipeline.step()
        assert pipeline.queue.pending(RAW) == 1  # read again by the restart
        assert pipeline.queue.dead_letters() == []
