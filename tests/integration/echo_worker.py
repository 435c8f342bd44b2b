"""A minimal stage run by the real StageRunner in its own process, for the delivery tests.

It decodes RawStory records, appends "<story id>" to a log file (the side effect the
tests count), and publishes the story to an output topic. `--hang-on ID` makes it
hang after handling that story, before the offset is committed, so a test can kill it
there. `--in-flight N` runs it as a chunked stage, one story per chunk on a
pool of N threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from idle_exit import IdleExit

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Message, Output, Result
from pipeline.errors import PipelineError
from pipeline.metrics import Metrics
from pipeline.models import RawStory, decode
from pipeline.runtime import stop_event


class EchoStage:
    name = "extractor"

    def __init__(self, log_path: Path, out_topic: str, hang_on: str | None, delay: float) -> None:
        self.log_path = log_path
        self.out_topic = out_topic
        self.hang_on = hang_on
        self.delay = delay
        self.on_record: Callable[[], None] = lambda: None

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        return [self._handle(m) for m in messages]

    def _handle(self, message: Message) -> Result:
        try:
            story = decode(RawStory, message.value)
        except PipelineError as exc:  # DecodeError/SchemaError: the runner dead-letters it
            return exc
        self.on_record()
        time.sleep(self.delay)
        with self.log_path.open("a") as log:
            log.write(story.id + "\n")
        if story.id == self.hang_on:
            time.sleep(3600)
        return [Output(self.out_topic, story.id, message.value)]


class PooledEchoStage(EchoStage):
    """The same, one story per chunk on a thread pool: chunks finish in any order."""

    def __init__(
        self, log_path: Path, out_topic: str, hang_on: str | None, delay: float, *, threads: int
    ) -> None:
        super().__init__(log_path, out_topic, hang_on, delay)
        self.pool = ThreadPoolExecutor(threads)
        self.in_flight_target = threads

    def chunk_size(self, backlog: int) -> int:
        return 1

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]:
        return self.pool.submit(self.handle_batch, messages)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True, help="KafkaSettings as JSON")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--hang-on")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--exit-when-idle", action="store_true")
    parser.add_argument("--in-flight", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = KafkaSettings.model_validate(json.loads(args.settings))
    stop = stop_event()
    echo = (settings.topics.enriched, args.hang_on, args.delay)
    stage = (
        PooledEchoStage(args.log, *echo, threads=args.in_flight)
        if args.in_flight
        else EchoStage(args.log, *echo)
    )
    on_idle = IdleExit(stop) if args.exit_when_idle else None
    if on_idle is not None:
        stage.on_record = on_idle.reset
    topics = [settings.topics.raw]
    pace = settings.commit_interval_seconds
    StageRunner(stage, settings, topics, Metrics(), stop, commit_every=pace, on_idle=on_idle).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
