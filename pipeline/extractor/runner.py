"""The extractor's thin runner: RawStory records in, EnrichedStory records out, over Kafka.

The stage decodes a chunk, fetches its pages concurrently and hands the lot to the
extraction pool (`pool.py`: one process per core by default); the `InFlightRunner`
(the corridor's runner) keeps two chunks per pool process in flight, publishes each as it finishes,
dead-letters what could not be decoded, and commits behind the earliest record not
yet published. Several workers scale through the consumer group: each gets its
share of the raw topic's partitions, and each one's pool uses every core it is
given, so a worker whose partitions bring the heavier pages borrows the cores the
others leave idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from pipeline.config import Settings, TopicNames
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Message, Output, Result
from pipeline.errors import PipelineError
from pipeline.extractor.enrich import Enriched
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.pool import Extraction
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, RawStory, decode


class ExtractorStage:
    """The extractor's `ChunkedStage`, the same object on Kafka and in `newsmon run`."""

    name = "extractor"

    def __init__(
        self, extraction: Extraction, pages: PageFetcher, topics: TopicNames, metrics: Metrics
    ) -> None:
        self.extraction = extraction
        self.pages = pages
        self.topics = topics
        self.metrics = metrics

    @property
    def in_flight_target(self) -> int:
        return self.extraction.in_flight_target

    def chunk_size(self, backlog: int) -> int:
        return self.extraction.chunk_size(backlog)

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        return self.submit(messages).result()

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]:
        """Decode and fetch here; enrich in the pool; the results once it is done."""
        decoded = [self._decode(m) for m in messages]
        stories = [d for d in decoded if isinstance(d, RawStory)]
        outcomes = self.pages.fetch_all([story.url for story in stories])
        results: Future[Sequence[Result]] = Future()
        if not stories:
            results.set_result(self._results(decoded, []))
            return results

        def finished(done: Future[Enriched]) -> None:
            try:
                enriched = done.result()
            except BaseException as exc:  # the runner retries the chunk one by one
                results.set_exception(exc)
                return
            results.set_result(self._results(decoded, enriched.stories))

        self.extraction.submit(list(zip(stories, outcomes, strict=True))).add_done_callback(
            finished
        )
        return results

    def _results(
        self, decoded: list[RawStory | PipelineError], enriched: list[EnrichedStory]
    ) -> list[Result]:
        stories = iter(enriched)
        results: list[Result] = []
        for item in decoded:
            if isinstance(item, PipelineError):
                results.append(item)
                continue
            story = next(stories)
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

    Models and the taxonomy load (in every pool process, see `Extraction`) before the
    consumer joins its group, so a bad config fails here instead of after partitions
    were assigned.
    """
    extraction = Extraction(settings, metrics)
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
