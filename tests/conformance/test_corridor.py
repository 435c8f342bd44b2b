"""One corridor, two transports: the same scenarios through Kafka (a real broker) and the
SQLite queue of `newsmon run`, with the same outputs, dead letters and counters.

Each scenario runs one stage over an input holding the same records. A transport whose
settle path drifts (a dead letter without its reason, an acknowledgement before the
publish, a retry it skips) fails here while the other passes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pytest

from pipeline.config import KafkaSettings, TopicNames
from pipeline.corridor.kafka.clients import Producer, read_to_end
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Message, Output, Result
from pipeline.corridor.runner import Runner
from pipeline.corridor.sqlite.queue import LocalQueue
from pipeline.corridor.sqlite.transport import QueueRunner, SqliteTransport
from pipeline.errors import PipelineError, Retryable, Skip
from pipeline.metrics import Metrics

STAGE = "extractor"
GOOD = [(f"story-{n}", f"body {n}".encode()) for n in range(4)]
POISON = b"\xff not a story"


class Crash(Exception):
    """The process dies here (the runner is abandoned, nothing more is settled)."""


@dataclass
class Ledger:
    """A stage's own durable record of what it finished (like the rules store)."""

    done: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    crash_after_publish: set[str] = field(default_factory=set)


class ScenarioStage:
    """Echoes each record to the output topic; the record's key says how it misbehaves.

    `poison`: not decodable; `flaky`: `Retryable` on the first try only; `stuck`:
    `Retryable` always. A record the ledger has finished is skipped (`Skip`).
    """

    name = STAGE

    def __init__(self, out_topic: str, ledger: Ledger) -> None:
        self.out_topic = out_topic
        self.ledger = ledger

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        return [self._handle(m) for m in messages]

    def _handle(self, message: Message) -> Result:
        key = (message.key or b"").decode()
        tries = self.ledger.attempts[key] = self.ledger.attempts.get(key, 0) + 1
        if key in self.ledger.done:
            return Skip("already done", reason="duplicate")
        if message.value == POISON:
            return PipelineError("not a story", reason="decode")
        if key == "stuck" or (key == "flaky" and tries == 1):
            return Retryable("the sink is busy", retry_after=0.01)
        return [Output(self.out_topic, key, message.value)]

    def published(self, messages: Sequence[Message]) -> None:
        """Record what was published; crash once where a scenario asks for it."""
        keys = {(m.key or b"").decode() for m in messages}
        self.ledger.done |= keys
        crashing = keys & self.ledger.crash_after_publish
        if crashing:
            self.ledger.crash_after_publish -= crashing
            raise Crash(f"killed between publish and acknowledge of {sorted(crashing)}")


def _echo_in_pool(values: list[bytes], marker: str) -> list[bytes]:
    if b"die" in values and os.path.exists(marker):
        os.unlink(marker)
        os._exit(1)  # a pool process killed mid-chunk (OOM killer, kill -9)
    return values


class PoolStage(ScenarioStage):
    """The same echo with each chunk enriched in a process pool, like the extractor."""

    in_flight_target = 2

    def __init__(self, out_topic: str, ledger: Ledger, marker: Path) -> None:
        super().__init__(out_topic, ledger)
        self.marker = marker
        self.pool = ProcessPoolExecutor(1, get_context("spawn"))

    def chunk_size(self, backlog: int) -> int:
        return 1

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]:
        done: Future[Sequence[Result]] = Future()
        inner = self.pool.submit(_echo_in_pool, [m.value for m in messages], str(self.marker))

        def landed(inner: Future[list[bytes]]) -> None:
            error = inner.exception()
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(self.handle_batch(messages))

        inner.add_done_callback(landed)
        return done


@dataclass(frozen=True)
class Seen:
    """What a scenario left behind, in a form both transports can give."""

    outputs: list[tuple[str, bytes]]
    dead_letters: list[tuple[str, bytes, str]]


class Harness:
    """One transport: feed its input, run a stage on it, read what came out."""

    settings: KafkaSettings
    metrics: Metrics

    def feed(self, records: Sequence[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def runner(self, stage: ScenarioStage, stop: threading.Event) -> Runner:
        raise NotImplementedError

    def seen(self) -> Seen:
        raise NotImplementedError

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


class KafkaHarness(Harness):
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()

    def feed(self, records: Sequence[tuple[str, bytes]]) -> None:
        producer = Producer(self.settings)
        try:
            producer.publish([Output(self.settings.topics.raw, k, v) for k, v in records])
        finally:
            producer.close()

    def runner(self, stage: ScenarioStage, stop: threading.Event) -> Runner:
        return StageRunner(
            stage, self.settings, [self.settings.topics.raw], self.metrics, stop,
            on_published=stage.published,
        )  # fmt: skip

    def seen(self) -> Seen:
        topics = self.settings.topics
        outputs = [(_text(m.key), m.value) for m in read_to_end(self.settings, topics.enriched)]
        dead = [
            (_text(m.key), m.value, _text(m.header("newsmon.error.reason")))
            for m in read_to_end(self.settings, topics.dead_letter)
        ]
        return Seen(sorted(outputs), sorted(dead))


class SqliteHarness(Harness):
    def __init__(self, settings: KafkaSettings, path: Path) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.queue = LocalQueue(path)

    def feed(self, records: Sequence[tuple[str, bytes]]) -> None:
        self.queue.put("raw", records)

    def runner(self, stage: ScenarioStage, stop: threading.Event) -> Runner:
        topics = self.settings.topics
        routes = {topics.raw: "raw", topics.enriched: "enriched"}
        transport = SqliteTransport(self.queue, "raw", routes, topics.dead_letter)
        return QueueRunner(
            stage, transport, self.settings, self.metrics, stop, on_published=stage.published
        )

    def seen(self) -> Seen:
        outputs = [(_text(m.key), m.value) for m in self.queue.take("enriched", 1000)]
        dead = [(d.key, d.payload, d.reason) for d in self.queue.dead_letters()]
        return Seen(sorted(outputs), sorted(dead))


def _text(value: bytes | None) -> str:
    return (value or b"").decode()


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.integration), "sqlite"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "kafka":
        yield KafkaHarness(request.getfixturevalue("kafka_settings"))
        return
    settings = KafkaSettings(
        topics=TopicNames(**{f: f"conformance.{f}" for f in TopicNames.model_fields}),
        retry_backoff_seconds=0.05,
    )
    sqlite = SqliteHarness(settings, tmp_path / "queue.sqlite3")
    yield sqlite
    sqlite.queue.close()


def run_until(
    runner: Runner, done: Callable[[], bool], timeout: float = 60.0, *, close: bool = True
) -> None:
    """Rounds until `done()` holds and one more round finds nothing (so the tail is settled)."""
    deadline = time.monotonic() + timeout
    try:
        while not (done() and runner.run_once(timeout=0.3) == 0):
            assert time.monotonic() < deadline, "the scenario did not finish in time"
            runner.run_once(timeout=0.3)
    finally:
        if close:
            runner.close()


def handled(ledger: Ledger, keys: Sequence[str]) -> Callable[[], bool]:
    return lambda: all(k in ledger.attempts for k in keys)


def test_a_poison_record_is_dead_lettered_with_its_bytes_and_reason(harness: Harness) -> None:
    records = [GOOD[0], ("poison", POISON), *GOOD[1:]]
    harness.feed(records)
    ledger = Ledger()
    stage = ScenarioStage(harness.settings.topics.enriched, ledger)

    run_until(harness.runner(stage, threading.Event()), handled(ledger, [k for k, _ in records]))

    seen = harness.seen()
    assert seen.outputs == sorted(GOOD)
    assert seen.dead_letters == [("poison", POISON, "decode")]
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="ok") == len(GOOD)
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="dead_letter") == 1
    assert harness.count("newsmon_dead_letters_total", stage=STAGE, reason="decode") == 1
    assert harness.count("newsmon_stage_errors_total", stage=STAGE, reason="decode") == 1


def test_a_retryable_failure_that_heals_is_published_once(harness: Harness) -> None:
    harness.feed([("flaky", b"flaky body"), GOOD[0]])
    ledger = Ledger()
    stage = ScenarioStage(harness.settings.topics.enriched, ledger)

    run_until(harness.runner(stage, threading.Event()), lambda: ledger.done >= {"flaky", "story-0"})

    seen = harness.seen()
    assert seen.outputs == sorted([("flaky", b"flaky body"), GOOD[0]])
    assert seen.dead_letters == []
    assert ledger.attempts["flaky"] == 2
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="retried") == 1
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="ok") == 2


def test_a_retryable_failure_that_never_heals_is_dead_lettered_after_max_attempts(
    harness: Harness,
) -> None:
    harness.feed([("stuck", b"stuck body"), GOOD[0]])
    ledger = Ledger()
    stage = ScenarioStage(harness.settings.topics.enriched, ledger)
    attempts = harness.settings.max_attempts

    run_until(
        harness.runner(stage, threading.Event()),
        lambda: ledger.attempts.get("stuck") == attempts and "story-0" in ledger.done,
    )

    seen = harness.seen()
    assert seen.outputs == [GOOD[0]]
    assert seen.dead_letters == [("stuck", b"stuck body", "retryable")]
    assert ledger.attempts["stuck"] == attempts == 3
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="retried") == attempts - 1
    assert harness.count("newsmon_dead_letters_total", stage=STAGE, reason="retryable") == 1
    assert harness.count("newsmon_stage_errors_total", stage=STAGE, reason="retryable") == 1


def test_a_pool_process_killed_mid_chunk_stops_the_runner_and_loses_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    marker = tmp_path / "die-once"
    marker.touch()
    records = [GOOD[0], ("die", b"die"), *GOOD[1:]]
    harness.feed(records)
    ledger = Ledger()
    out = harness.settings.topics.enriched
    first = PoolStage(out, ledger, marker)
    runner = harness.runner(first, threading.Event())
    try:
        with pytest.raises(BrokenProcessPool):
            run_until(runner, lambda: False, close=False)
    finally:
        runner.close()
        first.pool.shutdown()
    assert not marker.exists()
    assert harness.seen().dead_letters == []

    restarted = PoolStage(out, ledger, marker)
    try:
        run_until(
            harness.runner(restarted, threading.Event()),
            lambda: ledger.done >= {k for k, _ in records},
        )
    finally:
        restarted.pool.shutdown()

    seen = harness.seen()
    assert sorted(set(seen.outputs)) == sorted(records)
    assert seen.dead_letters == []
    assert harness.count("newsmon_dead_letters_total", stage=STAGE, reason="crash") == 0


def test_a_crash_between_publish_and_acknowledge_reads_again_and_the_ledger_drops_it(
    harness: Harness,
) -> None:
    harness.feed([GOOD[0]])
    ledger = Ledger(crash_after_publish={GOOD[0][0]})
    out = harness.settings.topics.enriched
    crashed = harness.runner(ScenarioStage(out, ledger), threading.Event())
    try:
        with pytest.raises(Crash):
            run_until(crashed, lambda: False, close=False)
    finally:
        crashed.close()  # what the crash left unacknowledged stays so
    assert harness.seen().outputs == [GOOD[0]]

    restarted = harness.runner(ScenarioStage(out, ledger), threading.Event())
    run_until(restarted, lambda: ledger.attempts[GOOD[0][0]] == 2)

    seen = harness.seen()
    assert seen.outputs == [GOOD[0]]  # published once, read twice (at least once)
    assert seen.dead_letters == []
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="ok") == 1
    assert harness.count("newsmon_records_total", stage=STAGE, outcome="skipped") == 1
