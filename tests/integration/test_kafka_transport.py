"""The corridor on a real broker: round trip, dead letters, at-least-once across kills."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewPartitions, NewTopic
from kafka_checks import committed, ends

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka import clients
from pipeline.corridor.kafka.clients import Producer
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Message, Output, Result
from pipeline.errors import PipelineError, Retryable
from pipeline.metrics import Metrics
from pipeline.models import RawStory, decode, story_id_for

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("echo_worker.py")


def make_story(n: int) -> RawStory:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    url = f"https://news.example.org/story/{n}"
    return RawStory(
        id=story_id_for(url), url=url, title=f"Story {n}", summary="A summary.",
        published=now, first_seen=now, feed="example", tags=["world"],
    )  # fmt: skip


def publish_stories(settings: KafkaSettings, stories: Sequence[RawStory]) -> None:
    producer = Producer(settings)
    try:
        producer.publish([Output(settings.topics.raw, s.id, s.to_bytes()) for s in stories])
    finally:
        producer.close()


def read_all(settings: KafkaSettings, topic: str) -> list[Message]:
    return list(clients.read_to_end(settings, topic))


class EchoStage:
    """Publishes each story to the enriched topic; fails on demand."""

    name = "extractor"

    def __init__(self, settings: KafkaSettings, transient_failures: int = 0) -> None:
        self.settings = settings
        self.transient_failures = transient_failures
        self.handled: list[str] = []

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        return [self._handle(m) for m in messages]

    def _handle(self, message: Message) -> Result:
        try:
            story = decode(RawStory, message.value)
        except PipelineError as exc:
            return exc
        if self.transient_failures > 0:
            self.transient_failures -= 1
            return Retryable("flaky", retry_after=0.01)
        self.handled.append(story.id)
        return [Output(self.settings.topics.enriched, story.id, message.value)]


def run_until(runner: StageRunner, done: threading.Event, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        runner.run_once(timeout=0.5)
    runner.close()


def test_story_round_trips_with_key_and_schema(kafka_settings: KafkaSettings) -> None:
    story = make_story(1)
    publish_stories(kafka_settings, [story])

    [message] = read_all(kafka_settings, kafka_settings.topics.raw)

    assert message.key == story.id.encode()
    assert decode(RawStory, message.value) == story
    assert json.loads(message.value)["schema_version"] == 1


def test_poison_record_is_dead_lettered_and_partition_moves_on(
    kafka_settings: KafkaSettings,
) -> None:
    producer = Producer(kafka_settings)
    good = [make_story(n) for n in range(3)]
    topic = kafka_settings.topics.raw
    poison = [
        Output(topic, "k", b"\xff not json"),
        Output(topic, "k", b'{"schema_version": 99}'),
    ]
    producer.publish([Output(topic, "k", good[0].to_bytes()), *poison])
    producer.publish([Output(topic, "k", s.to_bytes()) for s in good[1:]])
    producer.close()
    metrics = Metrics()
    stage = EchoStage(kafka_settings)
    stop = threading.Event()
    runner = StageRunner(stage, kafka_settings, [topic], metrics, stop)
    done = threading.Event()
    threading.Thread(target=lambda: _wait_for(lambda: len(stage.handled) == 3, done)).start()

    run_until(runner, done)

    assert stage.handled == [s.id for s in good]
    dead = read_all(kafka_settings, kafka_settings.topics.dead_letter)
    assert [m.value for m in dead] == [p.value for p in poison]
    reasons = [m.header("newsmon.error.reason") for m in dead]
    assert reasons == [b"decode", b"schema"]
    assert all(m.header("newsmon.source.topic") == topic.encode() for m in dead)
    assert (
        metrics.registry.get_sample_value(
            "newsmon_dead_letters_total", {"stage": "extractor", "reason": "schema"}
        )
        == 1.0
    )
    assert len(read_all(kafka_settings, kafka_settings.topics.enriched)) == 3


def test_transient_failure_is_retried_then_succeeds(kafka_settings: KafkaSettings) -> None:
    publish_stories(kafka_settings, [make_story(7)])
    metrics = Metrics()
    stage = EchoStage(kafka_settings, transient_failures=1)
    done = threading.Event()
    runner = StageRunner(stage, kafka_settings, [kafka_settings.topics.raw], metrics, done)
    threading.Thread(target=lambda: _wait_for(lambda: len(stage.handled) == 1, done)).start()

    run_until(runner, done)

    assert stage.handled == [make_story(7).id]
    assert read_all(kafka_settings, kafka_settings.topics.dead_letter) == []
    assert (
        metrics.registry.get_sample_value(
            "newsmon_records_total", {"stage": "extractor", "outcome": "retried"}
        )
        == 1.0
    )


def test_state_that_cannot_be_restored_yet_holds_its_records_back_and_loses_none(
    kafka_settings: KafkaSettings,
) -> None:
    """A replica assigned partitions while the changelog cannot be read (the broker is away)
    stays up, hands out none of their records until their state is restored, then all."""
    stories = [make_story(n) for n in range(6)]
    publish_stories(kafka_settings, stories)
    stage = EchoStage(kafka_settings)
    done = threading.Event()
    runner = StageRunner(stage, kafka_settings, [kafka_settings.topics.raw], Metrics(), done)
    attempts: list[int] = []

    def restore(partitions: set[tuple[str, int]]) -> None:
        attempts.append(len(stage.handled))
        if len(attempts) <= 2:
            raise Retryable("changelog unreachable", reason="state")

    runner.kafka.on_assigned = restore
    threading.Thread(target=lambda: _wait_for(lambda: len(stage.handled) == 6, done)).start()

    run_until(runner, done)

    assert len(attempts) >= 3
    assert attempts[:3] == [0, 0, 0]  # nothing handled before the state was restored
    assert sorted(stage.handled) == sorted(s.id for s in stories)
    assert len(read_all(kafka_settings, kafka_settings.topics.enriched)) == 6


def _wait_for(
    condition: Callable[[], object], done: threading.Event, timeout: float = 40.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.1)
    time.sleep(0.3)
    done.set()


def start_worker(settings: KafkaSettings, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--settings", settings.model_dump_json(),
         "--log", str(log), *extra],
    )  # fmt: skip


def wait_for_lines(log: Path, count: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text().split() if log.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    pytest.fail(f"worker handled {len(lines)} of {count} records in {timeout} s")


def test_sigkill_before_commit_redelivers_the_record(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    story = make_story(42)
    publish_stories(kafka_settings, [story])
    log = tmp_path / "handled.log"

    worker = start_worker(kafka_settings, log, "--hang-on", story.id)
    wait_for_lines(log, 1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    restarted = start_worker(kafka_settings, log, "--exit-when-idle")
    assert restarted.wait(timeout=120) == 0

    assert log.read_text().split() == [story.id, story.id]


@pytest.mark.parametrize("runner", [[], ["--in-flight", "2"]], ids=["stage", "in-flight"])
def test_sigterm_finishes_in_hand_record_and_loses_or_repeats_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path, runner: list[str]
) -> None:
    """Commits are paced (`commit_interval_seconds`): stopping commits what was settled."""
    stories = [make_story(n) for n in range(20)]
    publish_stories(kafka_settings, stories)
    log = tmp_path / "handled.log"

    worker = start_worker(kafka_settings, log, "--delay", "0.2", *runner)
    wait_for_lines(log, 5)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    handled_before = len(log.read_text().split())
    restarted = start_worker(kafka_settings, log, "--exit-when-idle")
    assert restarted.wait(timeout=120) == 0

    handled = log.read_text().split()
    assert 5 <= handled_before < 20
    assert sorted(handled) == sorted(s.id for s in stories)
    published = read_all(kafka_settings, kafka_settings.topics.enriched)
    assert sorted(m.key or b"" for m in published) == sorted(s.id.encode() for s in stories)


def test_a_worker_frozen_past_its_session_leaves_its_old_records_to_the_new_owner(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A worker frozen longer than its session (a stopped container, a broker it could not
    reach) is dropped from the group without knowing; another takes its partitions and
    handles their records. Woken, its client fetches those records again from where it
    was: it must not handle them a second time (a notifier would deliver them twice).
    Commits follow every record here, so that a hand-over repeats nothing of itself."""
    settings = kafka_settings.model_copy(update={"commit_interval_seconds": 0.0})
    log = tmp_path / "handled.log"
    first = make_story(0)
    publish_stories(settings, [first])
    frozen = start_worker(settings, log)
    taker: subprocess.Popen[bytes] | None = None
    try:
        wait_for_lines(log, 1)
        frozen.send_signal(signal.SIGSTOP)
        stories = [make_story(n) for n in range(1, 9)]
        publish_stories(settings, stories)
        taker = start_worker(settings, log)
        wait_for_lines(log, 1 + len(stories), timeout=90)  # after the frozen one's session
        frozen.send_signal(signal.SIGCONT)
        time.sleep(8)  # it fetches again, polls, rejoins
    finally:
        frozen.send_signal(signal.SIGCONT)
        for worker in (frozen, taker):
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
    handled = collections.Counter(log.read_text().split())
    assert set(handled) == {s.id for s in [first, *stories]}
    assert max(handled.values()) == 1, [k for k, n in handled.items() if n > 1]


def test_topics_create_is_safe_to_run_twice(kafka_settings: KafkaSettings) -> None:
    assert clients.create_topics(kafka_settings) == []
    partitions = clients.describe_topics(kafka_settings)
    for spec in clients.topic_specs(kafka_settings):
        assert partitions[spec.name] == kafka_settings.partitions


def test_a_missing_topic_is_a_clear_error(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients, "TOPIC_WAIT_SECONDS", 1.0)
    with pytest.raises(PipelineError, match="newsmon topics create") as caught:
        clients.group_consumer(kafka_settings, "g", "test", ["no-such-topic-here"])
    assert caught.value.reason == "no_topic"


def test_a_rejoin_answered_between_polls_is_not_lost(kafka_settings: KafkaSettings) -> None:
    """New partitions make the leader rejoin; its answer lands while nobody polls.

    kafka-python 3.0 alone forgets such a join for good (no heartbeats, stale
    assignment); `group_consumer` sees it through. Polls of 0 ms with gaps between
    them make every answer land between polls.
    """
    topic = f"{kafka_settings.group_prefix}.growing"
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        consumer = clients.group_consumer(kafka_settings, f"{topic}-group", "test", [topic])
        try:
            assert wait_for_assignment(consumer, {0}, poll_ms=100)
            admin.create_partitions({topic: NewPartitions(total_count=2)})
            consumer.topics()  # fetch metadata now rather than at the next refresh
            assert wait_for_assignment(consumer, {0, 1}, poll_ms=0)
        finally:
            consumer.close()
    finally:
        admin.close()


def wait_for_assignment(consumer: KafkaConsumer, partitions: set[int], poll_ms: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=poll_ms)
        if {tp.partition for tp in consumer.assignment()} == partitions:
            return True
        time.sleep(0.2)
    return False


class SlowPooledStage:
    """Echoes each story after `delay` seconds, one story per chunk on a thread pool."""

    name = "extractor"

    def __init__(self, settings: KafkaSettings, delay: float, threads: int = 8) -> None:
        self.settings, self.delay = settings, delay
        self.pool = ThreadPoolExecutor(threads)
        self.in_flight_target = threads
        self.started: list[int] = []

    def chunk_size(self, backlog: int) -> int:
        return 1

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        self.started.extend(m.offset for m in messages)
        time.sleep(self.delay)
        return [[Output(self.settings.topics.enriched, m.key, m.value)] for m in messages]

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]:
        return self.pool.submit(self.handle_batch, messages)


def test_in_flight_runner_never_commits_past_an_unfinished_record(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    stories = [make_story(n) for n in range(12)]
    hung = stories[0]
    publish_stories(kafka_settings, stories)
    log = tmp_path / "handled.log"

    worker = start_worker(kafka_settings, log, "--in-flight", "4", "--hang-on", hung.id)
    wait_for_lines(log, len(stories))  # the others went past the hung one's chunk
    time.sleep(1.0)  # and were published and committed what could be
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    restarted = start_worker(kafka_settings, log, "--in-flight", "4", "--exit-when-idle")
    assert restarted.wait(timeout=120) == 0

    handled = log.read_text().split()
    assert hung.id in handled[len(stories) :]  # never committed, so read again
    assert set(handled) == {s.id for s in stories}
    published = {m.key for m in read_all(kafka_settings, kafka_settings.topics.enriched)}
    assert published == {s.id.encode() for s in stories}
    raw = kafka_settings.topics.raw
    group = f"{kafka_settings.group_prefix}-extractor"
    assert committed(kafka_settings, group, raw) == ends(kafka_settings, raw)


def test_partitions_moving_mid_flight_publish_each_story_once(
    kafka_settings: KafkaSettings,
) -> None:
    """A second worker joins while the first has every story in flight: the first drops
    what it no longer owns (or owns anew, read again), so nothing is published twice."""
    stories = [make_story(n) for n in range(6)]
    publish_stories(kafka_settings, stories)
    raw, enriched = kafka_settings.topics.raw, kafka_settings.topics.enriched
    stop = threading.Event()
    first_stage = SlowPooledStage(kafka_settings, delay=4.0)
    runners = [StageRunner(first_stage, kafka_settings, [raw], Metrics(), stop)]
    threads = [threading.Thread(target=runners[0].run)]
    threads[0].start()
    try:
        _wait(lambda: len(first_stage.started) == len(stories))
        runners.append(
            StageRunner(SlowPooledStage(kafka_settings, 0.1), kafka_settings, [raw],
                           Metrics(), stop)
        )  # fmt: skip
        threads.append(threading.Thread(target=runners[1].run))
        threads[1].start()
        _wait(lambda: len({m.key for m in read_all(kafka_settings, enriched)}) == len(stories))
        time.sleep(5.0)  # the first worker's chunks from before the move land meanwhile
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    keys = collections.Counter(m.key for m in read_all(kafka_settings, enriched))
    assert keys == collections.Counter(s.id.encode() for s in stories)
    assert len(first_stage.started) > len(stories)  # it read again what it owned anew
    group = f"{kafka_settings.group_prefix}-extractor"
    assert committed(kafka_settings, group, raw) == ends(kafka_settings, raw)


class PlainStage:
    """The same echo as a plain `Stage`: the runner handles one chunk at a time."""

    name = "extractor"

    def __init__(self, pooled: SlowPooledStage) -> None:
        self.pooled = pooled
        self.started = pooled.started

    def handle_batch(self, messages: Sequence[Message]) -> list[Result]:
        return self.pooled.handle_batch(messages)


@pytest.mark.parametrize("pooled", [False, True], ids=["plain", "chunked"])
def test_commits_are_paced_and_caught_up_when_the_input_runs_dry(
    kafka_settings: KafkaSettings, pooled: bool
) -> None:
    """With `commit_every`, a stream of records costs a commit per interval, not per
    record; once nothing more arrives, everything settled is committed."""
    raw, enriched = kafka_settings.topics.raw, kafka_settings.topics.enriched
    for n in range(12):  # one produce request each: the polls bring them in small bites
        publish_stories(kafka_settings, [make_story(n)])
    chunked = SlowPooledStage(kafka_settings, delay=0.05, threads=1)  # chunks land one by one
    stage = chunked if pooled else PlainStage(chunked)
    runner = StageRunner(
        stage, kafka_settings, [raw], Metrics(), threading.Event(), commit_every=3600.0
    )
    commits: list[dict[object, object]] = []
    commit = runner.consumer.commit

    def counted(offsets: dict[object, object], **options: object) -> None:
        commits.append(offsets)
        commit(offsets, **options)

    runner.consumer.commit = counted
    try:
        _wait(lambda: runner.run_once(timeout=0.2) >= 0 and len(stage.started) == 12)
        ended = ends(kafka_settings, raw)
        _wait(
            lambda: (
                runner.run_once(timeout=0.2) >= 0
                and committed(kafka_settings, runner.group_id, raw) == ended
            )
        )
    finally:
        runner.close()
    assert len(read_all(kafka_settings, enriched)) == 12
    # One commit each time the input ran dry (once or a few times), against 12 unpaced.
    assert 1 <= len(commits) <= 5


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_broken_pool_stops_the_worker_and_dead_letters_nothing(
    kafka_settings: KafkaSettings,
) -> None:
    publish_stories(kafka_settings, [make_story(n) for n in range(3)])
    stage = SlowPooledStage(kafka_settings, delay=0.0)

    def broken(messages: Sequence[Message]) -> Future[Sequence[Result]]:
        failed: Future[Sequence[Result]] = Future()
        failed.set_exception(BrokenProcessPool("a pool process was killed"))
        return failed

    stage.submit = broken  # type: ignore[method-assign]
    raw = kafka_settings.topics.raw
    runner = StageRunner(stage, kafka_settings, [raw], Metrics(), threading.Event())
    with pytest.raises(BrokenProcessPool):
        for _ in range(300):
            runner.run_once(timeout=0.2)
    runner.close()
    assert read_all(kafka_settings, kafka_settings.topics.dead_letter) == []
    assert committed(kafka_settings, f"{kafka_settings.group_prefix}-extractor", raw) == {}


def test_a_hung_chunk_stops_the_rounds_a_liveness_probe_watches(
    kafka_settings: KafkaSettings,
) -> None:
    publish_stories(kafka_settings, [make_story(1)])
    stage = SlowPooledStage(kafka_settings, delay=0.0)
    never: Future[Sequence[Result]] = Future()  # a chunk that never finishes
    submitted = threading.Event()

    def hang(messages: Sequence[Message]) -> Future[Sequence[Result]]:
        submitted.set()
        return never

    stage.submit = hang  # type: ignore[method-assign]
    rounds: list[float] = []
    runner = StageRunner(
        stage, kafka_settings, [kafka_settings.topics.raw], Metrics(), threading.Event(),
        on_round=lambda: rounds.append(time.monotonic()),
    )  # fmt: skip
    runner.stuck_after = 1.0
    try:
        _wait(lambda: runner.run_once(timeout=0.2) >= 0 and submitted.is_set())
        launched = time.monotonic()
        while time.monotonic() < launched + 3.0:
            runner.run_once(timeout=0.2)
        assert any(launched < r < launched + 0.8 for r in rounds)  # alive while it may finish
        assert max(rounds) < launched + 1.5  # then no more rounds: the probe sees it hang
    finally:
        never.set_result([[]])
        runner.close()
