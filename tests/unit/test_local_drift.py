"""`newsmon run` settles records as the Kafka workers do (issue 12's drift, fixed toward them)."""

from __future__ import annotations

import threading
from pathlib import Path

from pipeline.config import load_config
from pipeline.local import RAW, LocalPipeline
from pipeline.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def test_an_undecodable_raw_story_is_dead_lettered_and_counted_as_on_kafka(
    tmp_path: Path,
) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: http://127.0.0.1:9/feed.xml\n    name: local\n")
    config = load_config(
        ROOT / "configs" / "newsmon.yaml", feeds, ROOT / "configs" / "rules.yaml", tmp_path,
        overrides={"extraction": {"workers": 1}},
    )  # fmt: skip
    metrics = Metrics()
    done = threading.Event()
    done.set()
    pipeline = LocalPipeline(config, metrics, threading.Event())
    try:
        pipeline.queue.put(RAW, [("poison", b"\xff not a story")])
        for _ in range(3):
            pipeline.step()
        [dead] = pipeline.queue.dead_letters()
        assert (dead.key, dead.payload, dead.reason) == ("poison", b"\xff not a story", "decode")
        assert pipeline.queue.pending(RAW) == 0
    finally:
        pipeline.close(done)

    def count(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert count("newsmon_stage_errors_total", stage="extractor", reason="decode") == 1
    assert count("newsmon_dead_letters_total", stage="extractor", reason="decode") == 1
    assert count("newsmon_stories_enriched_total", outcome="failed") == 1
    assert pipeline.report.dead_letters == 1
