"""The extractor's host on the corridor: RawStory records in, EnrichedStory records out.

The stage decodes a chunk, fetches its pages concurrently and hands the lot to the
extraction pool (`pool.py`: one process per core by default); the corridor's runner
keeps two chunks per pool process in flight, publishes each as it finishes,
dead-letters what could not be decoded, and acknowledges behind the earliest record
not yet published. The same object runs on Kafka (`worker.py`) and in `newsmon run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from pipeline.config import TopicNames
from pipeline.corridor.records import Message, Output, Result
from pipeline.errors import PipelineError
from pipeline.extractor.enrich import Enriched
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.pool import Extraction
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, RawStory, decode


@dataclass
class ExtractorStage:
    """The extractor's `ChunkedStage`, the same object on Kafka and in `newsmon run`."""

    extraction: Extraction
    pages: PageFetcher
    topics: TopicNames
    metrics: Metrics
    name = "extractor"

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
