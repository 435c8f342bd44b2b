"""`newsmon run` when its extraction pool breaks: it stops, and the stories stay queued."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
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


def broken(items: Items) -> Future[Enriched]:
    failed: Future[Enriched] = Future()
    failed.set_exception(BrokenProcessPool("a pool process was killed"))
    return failed


def test_a_broken_pool_stops_the_run_and_dead_letters_nothing(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: http://127.0.0.1:9/feed.xml\n    name: local\n")
    config = load_config(
        ROOT / "configs" / "newsmon.yaml", feeds, ROOT / "configs" / "rules.yaml", tmp_path,
        overrides={"extraction": {"workers": 1}},
    )  # fmt: skip
    done = threading.Event()
    done.set()
    pipeline = LocalPipeline(config, Metrics(), threading.Event())
    try:
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
    finally:
        pipeline.close(done)
