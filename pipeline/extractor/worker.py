"""`newsmon extractor`: the extractor stage on Kafka.

Several workers scale through the consumer group: each gets its share of the raw
topic's partitions, and each one's pool uses every core it is given, so a worker
whose partitions bring the heavier pages borrows the cores the others leave idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pipeline.config import Settings, TaxonomyFile
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.pool import Extraction
from pipeline.extractor.stage import ExtractorStage
from pipeline.metrics import Metrics


def run_extractor(
    settings: Settings,
    taxonomy: TaxonomyFile,
    metrics: Metrics,
    stop: threading.Event,
    on_round: Callable[[], None] | None = None,
) -> None:
    """The worker as `newsmon extractor` runs it, until `stop` is set.

    Models and the taxonomy load (in every pool process, see `Extraction`) before the
    consumer joins its group, so a bad config fails here instead of after partitions
    were assigned.
    """
    extraction = Extraction(settings, taxonomy, metrics)
    try:
        max_bytes = settings.extraction.max_html_bytes
        with PageFetcher(settings.http, max_bytes=max_bytes, metrics=metrics) as pages:
            stage = ExtractorStage(extraction, pages, settings.kafka.topics, metrics)
            topics = [settings.kafka.topics.raw]
            runner = StageRunner(
                stage, settings.kafka, topics, metrics, stop,
                commit_every=settings.kafka.commit_interval_seconds, on_round=on_round,
            )  # fmt: skip
            runner.run()
    finally:
        extraction.close()
