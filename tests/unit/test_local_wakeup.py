"""`newsmon run` wakes when a chunk in flight finishes, not only when a record is queued.

The main loop idles on the queue's `arrived` event. Before, it waited on the pool's
chunks whenever any were in flight, so a story the poller queued meanwhile sat until
a chunk landed or the idle timeout passed (up to 0.2 s more latency per story); and
waiting on `arrived` alone would miss a chunk landing. The runner now sets the event
when a chunk lands, so one wait covers both.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from pipeline.config import KafkaSettings
from pipeline.corridor.records import Message, Output, Result
from pipeline.corridor.sqlite.queue import LocalQueue
from pipeline.corridor.sqlite.transport import QueueRunner, SqliteTransport
from pipeline.metrics import Metrics


class HeldStage:
    """A chunked stage whose chunks finish when the test says so."""

    name = "held"
    in_flight_target = 2

    def __init__(self) -> None:
        self.flights: list[tuple[Sequence[Message], Future[Sequence[Result]]]] = []

    def chunk_size(self, backlog: int) -> int:
        return 1

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        raise AssertionError("chunks go through submit")

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]:
        future: Future[Sequence[Result]] = Future()
        self.flights.append((messages, future))
        return future

    def finish(self) -> None:
        messages, future = self.flights.pop(0)
        future.set_result([[Output("out", m.key, m.value)] for m in messages])


def test_a_chunk_landing_sets_the_queue_event_the_main_loop_waits_on(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "queue.sqlite3")
    stage = HeldStage()
    transport = SqliteTransport(queue, "in", {"out": "out"}, "dead")
    runner = QueueRunner(stage, transport, KafkaSettings(), Metrics(), threading.Event())
    try:
        queue.put("in", [("a", b"1")])
        runner.run_once(timeout=0)
        assert len(stage.flights) == 1 and runner.in_hand() == 1
        queue.arrived.clear()  # the main loop goes idle with the chunk in flight

        stage.finish()

        assert queue.arrived.is_set()
        runner.run_once(timeout=0)
        assert [m.key for m in queue.take("out", 10)] == [b"a"]
        assert queue.pending("in") == 0
    finally:
        runner.close()
        queue.close()
