"""The extractor's thin runner: RawStory records in, EnrichedStory records out, over Kafka.

The stage decodes a chunk, fetches its pages concurrently, hands the lot to the
`Enricher`, and returns one result per record; the `StageRunner` publishes,
dead-letters what could not be decoded, and commits. Two workers scale through
the consumer group: each gets its share of the raw topic's partitions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from pipeline.config import Settings, TopicNames
from pipeline.errors import PipelineError
from pipeline.extractor.enrich import Enricher
from pipeline.extractor.pages import PageFetcher
from pipeline.kafka_io import Message, Output, Result, StageRunner
from pipeline.metrics import Metrics
from pipeline.models import RawStory, decode


class ExtractorStage:
    """The `Stage` of the Kafka corridor for the extractor."""

    name = "extractor"

    def __init__(
        self, enricher: Enricher, pages: PageFetcher, topics: TopicNames, metrics: Metrics
    ) -> None:
        self.enricher = enricher
        self.pages = pages
        self.topics = topics
        self.metrics = metrics

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        decoded = [self._decode(m) for m in messages]
        stories = [d for d in decoded if isinstance(d, RawStory)]
        outcomes = self.pages.fetch_all([story.url for story in stories])
        enriched = iter(self.enricher.enrich_batch(list(zip(stories, outcomes, strict=True))))
        results: list[Result] = []
        for item in decoded:
            if isinstance(item, PipelineError):
                results.append(item)
                continue
            story = next(enriched)
            results.append([Output(self.topics.enriched, key=story.id, value=story.to_bytes())])
        return results

    def _decode(self, message: Message) -> RawStory | PipelineError:
        """A record that is not a RawStory is counted as failed and goes to the dead letters."""
        try:
            return decode(RawStory, message.value)
        except PipelineError as exc:
            self.metrics.stories_enriched.labels("failed").inc()
            return exc


def run_extractor(
    settings: Settings,
    metrics: Metrics,
    stop: threading.Event,
    on_round: Callable[[], None] | None = None,
) -> None:
    """The worker as `newsmon extractor` runs it, until `stop` is set.

    Models and the taxonomy load before the consumer joins its group, so a bad
    config fails here instead of after partitions were assigned.
    """
    enricher = Enricher.from_settings(settings, metrics)
    max_bytes = settings.extraction.max_html_bytes
    with PageFetcher(settings.http, max_bytes=max_bytes, metrics=metrics) as pages:
        stage = ExtractorStage(enricher, pages, settings.kafka.topics, metrics)
        topics = [settings.kafka.topics.raw]
        runner = StageRunner(
            stage, settings.kafka, topics, metrics, stop,
            chunk_size=settings.nlp.batch_size, on_round=on_round,
        )  # fmt: skip
        runner.run()
