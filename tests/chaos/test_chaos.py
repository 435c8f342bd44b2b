"""Chaos under load: the four Kafka workers while stories are released into a loopback feed,
and one fault after another.

Faults, in order, while stories keep coming: the webhook refuses every delivery for a
while; `kill -9` of the extractor, the rules worker, the notifier and the poller (each
restarted a second later with its state directory, as a container restart policy
would); a second replica of the rules worker and of the notifier joins, each with a
state directory of its own as on another host (a rebalance: partitions and their state
move to it, restored from the changelogs), then a second extractor; the broker is
killed with -9 and restarted. At the end every expected alert (one per story) has arrived exactly once by
`webhook-id`, signed; the workers' counters (scraped from `/metrics` before each kill
and at the end) agree with what the receiver saw. A table prints: fault, what the
pipeline did, alerts delivered late, repeats.

`NEWSMON_CHAOS=full` runs the long form (stories over 60 s, a 30 s webhook outage, a
20 s broker outage: about 4 minutes, for docs/benchmarks.md):

    NEWSMON_CHAOS=full .venv/bin/pytest tests/chaos -s

Without it, the same faults run on a shorter clock (stories over 30 s, 15 s and 12 s
outages), so the suite keeps it. `NEWSMON_CHAOS_BROKERS=3` runs it on the three-node
cluster of `kafka_cluster` (replication 3, min.insync.replicas 2), where the broker
faults are a kill -9 of the leader of a busy partition (restarted later) and a rolling
restart of all three.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import standardwebhooks
from conftest import KafkaCluster
from notifier_receiver import Receiver
from pipeline_procs import SECRET, BenchFiles, child_env, settings_for, write_files
from pipeline_site import FeedServer, Releases, StoryPages, load_corpus, page_server
from prometheus_client.parser import text_string_to_metric_families
from test_broker_outage import LoneBroker
from test_kafka_cluster import collect_client_garbage, leader_of  # noqa: F401 - a fixture

from pipeline.config import KafkaSettings, Settings, load_config
from pipeline.corridor.kafka.clients import create_topics

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("collect_client_garbage")]

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("NEWSMON_CHAOS") == "full"
THREE_BROKERS = os.environ.get("NEWSMON_CHAOS_BROKERS") == "3"
RELEASE_SECONDS = 60.0 if FULL else 30.0
STORIES_PER_SECOND = 0.5
WEBHOOK_OUTAGE = 30.0 if FULL else 15.0
BROKER_OUTAGE = 20.0 if FULL else 12.0
RESTART_AFTER = 1.0
LATE_SECONDS = 30.0
"""An alert arriving later than this after its story was released counts as late."""
DRAIN_SECONDS = 300.0
_PORT = re.compile(r"metrics listening host=\S+ port=(\d+)")
_STORY = re.compile(r"/story/(\d+)")


@dataclass
class Worker:
    name: str
    command: str
    state: Path | None
    process: subprocess.Popen[bytes]
    log: Path
    incarnation: int


@dataclass
class Workers:
    """The workers as child processes (each leads its process group, its pool with it)."""

    folder: Path
    files: BenchFiles
    running: dict[str, Worker] = field(default_factory=dict)
    counted: Counter[str] = field(default_factory=Counter)
    """Counters of worker incarnations that were killed, as they were at the kill."""
    logs: list[Path] = field(default_factory=list)
    """The log of every incarnation, killed or not."""
    killed_logs: list[Path] = field(default_factory=list)
    incarnations: Counter[str] = field(default_factory=Counter)

    def start(self, name: str, command: str, state: Path | None) -> Worker:
        self.incarnations[name] += 1
        log = self.folder / f"{name}.{self.incarnations[name]}.log"
        flags = self.files.flags(state)
        if state is None:
            flags = flags[:-2]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", command, *flags],
                cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        worker = Worker(name, command, state, process, log, self.incarnations[name])
        self.running[name] = worker
        self.logs.append(log)
        return worker

    def kill(self, name: str) -> None:
        """Scrape its counters, then kill -9 its whole process group (pool included).

        What it counted between the scrape and the kill is lost with it; the counters the
        test compares are each logged where they are counted ("alert raised", "alert
        delivered"), so for those the killed incarnation's log gives the value at its death.
        """
        worker = self.running[name]
        scraped: Counter[str] = Counter()
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            scraped = counters(self.port(name, timeout=1))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        for key, phrase in LOGGED_COUNTERS.items():  # counted just before it is logged
            scraped[key] = max(scraped[key], len(logged_ids(worker.log, phrase)))
        self.counted.update(scraped)
        self.killed_logs.append(worker.log)

    def restart(self, name: str) -> Worker:
        worker = self.running[name]
        return self.start(name, worker.command, worker.state)

    def port(self, name: str, timeout: float = 120.0) -> int:
        log = self.running[name].log
        deadline = time.monotonic() + timeout
        while True:
            found = _PORT.search(log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            assert time.monotonic() < deadline, f"{log.name}: no metrics port logged"
            time.sleep(0.2)

    def ready(self, name: str) -> bool:
        try:
            port = self.port(name, timeout=0.5)
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 200
        except (AssertionError, httpx.HTTPError):
            return False

    def not_ready(self, name: str) -> bool:
        try:
            port = self.port(name, timeout=0.5)
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 503
        except (AssertionError, httpx.HTTPError):
            return False

    def check_alive(self) -> None:
        dead = {
            n: w.process.returncode for n, w in self.running.items() if w.process.poll() is not None
        }
        assert not dead, f"workers exited on their own: {dead}\n{self.tails()}"

    def stop_all(self) -> dict[str, int]:
        for worker in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        codes = {}
        for name, worker in self.running.items():
            try:
                codes[name] = worker.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                codes[name] = worker.process.wait()
        return codes

    def tails(self) -> str:
        return "\n".join(
            f"--- {w.log.name}\n" + "\n".join(w.log.read_text(errors="replace").splitlines()[-20:])
            for w in self.running.values()
        )


LOGGED_COUNTERS = {
    "newsmon_alerts_total": "alert raised",
    "newsmon_deliveries_total:delivered": "alert delivered",
}
_ALERT_ID = re.compile(r"alert_id=([0-9a-f]+)")


def logged_ids(log: Path, phrase: str) -> list[str]:
    """The alert ids of a worker's log lines saying `phrase`, in order (repeats kept)."""
    return [
        found.group(1)
        for line in log.read_text(errors="replace").splitlines()
        if phrase in line and (found := _ALERT_ID.search(line))
    ]


def counters(port: int) -> Counter[str]:
    """The counters a chaos run compares, summed over their labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    wanted = {
        "newsmon_feed_entries_total": "kind",
        "newsmon_alerts_total": None,
        "newsmon_deliveries_total": "outcome",
        "newsmon_kafka_outages_total": None,
        "newsmon_dead_letters_total": None,
    }
    found: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                label = wanted[sample.name]
                key = sample.name + (f":{sample.labels[label]}" if label else "")
                found[key] += int(sample.value)  # counts of events: whole numbers
    return found


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    did: str = ""


def wait_for(condition: Callable[[], bool], timeout: float, check: Callable[[], None]) -> float:
    """Seconds until `condition` held (raises after `timeout`)."""
    started = time.monotonic()
    while not condition():
        check()
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[LoneBroker | KafkaCluster]:
    """One broker of its own, or (NEWSMON_CHAOS_BROKERS=3) the session's three-node cluster."""
    if THREE_BROKERS:
        yield request.getfixturevalue("kafka_cluster")
        return
    node = LoneBroker()
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_every_alert_arrives_once_through_kills_outages_and_a_rebalance(
    broker: LoneBroker | KafkaCluster, tmp_path: Path
) -> None:
    corpus = load_corpus()
    pages = StoryPages(corpus)
    releases = Releases()
    receiver = Receiver()
    with page_server(corpus) as site:
        feed = FeedServer(releases, pages, site.site)
        try:
            run_chaos(
                broker, tmp_path, pages=pages, releases=releases, feed=feed, receiver=receiver
            )
        finally:
            feed.close()
            receiver.close()


def run_chaos(
    broker: LoneBroker | KafkaCluster,
    folder: Path,
    *,
    pages: StoryPages,
    releases: Releases,
    feed: FeedServer,
    receiver: Receiver,
) -> None:
    files = chaos_files(broker, folder, pages, feed, receiver)
    kafka = load_config(files.config, files.feeds, files.rules).settings.kafka
    create_topics(kafka)
    state = folder / "config" / "state"
    workers = Workers(folder, files)
    workers.start("poller", "poller", state / "poller")
    workers.start("extractor", "extractor", None)
    workers.start("rules", "rules", state / "rules")
    workers.start("notifier", "notifier", state / "notifier")
    try:
        names = list(workers.running)
        wait_for(lambda: all(workers.ready(n) for n in names), 240, workers.check_alive)
        t0 = time.time() + 2
        planned = releases.plan(STORIES_PER_SECOND, RELEASE_SECONDS, t0)
        faults = inject_faults(broker, kafka, workers, receiver, t0)
        expected = {n for n, _ in planned}
        wait_for(lambda: expected <= arrived_stories(receiver), DRAIN_SECONDS, workers.check_alive)
        assert all(f.ended for f in faults), "a restarted worker never became ready"
        time.sleep(10)  # a repeat would arrive by now
        workers.check_alive()
        final: Counter[str] = Counter(workers.counted)
        for name in workers.running:
            final.update(counters(workers.port(name)))
        raised = Counter(i for log in workers.logs for i in logged_ids(log, "alert raised"))
        by_killed = {i for log in workers.killed_logs for i in logged_ids(log, "alert raised")}
        twice = {i for i, n in raised.items() if n > 1}
        assert twice <= by_killed, f"raised twice, not after a kill: {twice - by_killed}"
        again = sum(raised.values()) - len(raised)
        report(faults, receiver, dict(planned), final, expected, raised_again=again)
        if isinstance(broker, LoneBroker):
            assert final["newsmon_kafka_outages_total"] >= 4  # every worker saw it
    finally:
        codes = workers.stop_all()
    assert set(codes.values()) == {0}, f"{codes}\n{workers.tails()}"


def chaos_files(
    broker: LoneBroker | KafkaCluster,
    folder: Path,
    pages: StoryPages,
    feed: FeedServer,
    receiver: Receiver,
) -> BenchFiles:
    run_id = f"chaos-{os.getpid()}-{int(time.time())}"
    settings = settings_for(
        run_id, broker.bootstrap, receiver.url(), pages.languages(), Settings().nlp.models["en"]
    )
    settings["kafka"].update(session_timeout_seconds=6, partitions=4)
    if THREE_BROKERS:
        settings["kafka"].update(replication_factor=3, min_insync_replicas=2)
    settings["poller"]["max_backoff_seconds"] = 3
    settings["extraction"] = {"workers": 1}
    settings["notifier"]["handoff_after_seconds"] = 5
    settings["notifier"]["backoff_max_seconds"] = 10
    return write_files(folder / "config", settings, feed.url, "newsmonbench")


def inject_faults(
    broker: LoneBroker | KafkaCluster,
    kafka: KafkaSettings,
    workers: Workers,
    receiver: Receiver,
    t0: float,
) -> list[Fault]:
    """The faults, spread over the release period (a worker restarting does not hold up
    the next fault)."""
    step = RELEASE_SECONDS / 8

    def at(offset: float) -> None:
        while time.time() < t0 + offset:
            workers.check_alive()
            time.sleep(0.2)

    at(step * 0.5)
    faults = [webhook_outage(receiver)]
    for index, name in enumerate(("extractor", "rules", "notifier", "poller")):
        at(step * (1 + index))
        faults.append(kill_and_restart(workers, name))
    at(step * 5)
    state = workers.files.state
    faults.append(add_replica(workers, "rules-2", "rules", state / "rules-2"))
    faults.append(add_replica(workers, "notifier-2", "notifier", state / "notifier-2"))
    at(step * 5.5)
    faults.append(add_replica(workers, "extractor-2", "extractor", None))
    at(step * 6)
    if isinstance(broker, LoneBroker):
        faults.append(broker_outage(broker, workers))
    else:
        faults.append(leader_killed(broker, kafka, workers))
        faults.append(rolling_restart(broker, workers))
    return faults


def webhook_outage(receiver: Receiver) -> Fault:
    fault = Fault(f"webhook refuses every delivery for {WEBHOOK_OUTAGE:.0f} s", time.time())
    until = receiver.down_for(WEBHOOK_OUTAGE, status=503)
    fault.ended = until

    def refused() -> int:
        return sum(1 for r in receiver.requests if not r.ok)

    threading.Timer(WEBHOOK_OUTAGE + 1, lambda: setattr(
        fault, "did", f"{refused()} deliveries refused (503), queued and retried with backoff"
    )).start()  # fmt: skip
    return fault


def kill_and_restart(workers: Workers, name: str) -> Fault:
    fault = Fault(f"kill -9 {name}", time.time())
    workers.kill(name)
    time.sleep(RESTART_AFTER)
    workers.restart(name)
    note_when_ready(
        workers,
        name,
        fault,
        f"restarted after {RESTART_AFTER:.0f} s, ready {{took:.0f}} s later, read on from its commits",
    )
    return fault


def add_replica(workers: Workers, name: str, command: str, state: Path | None) -> Fault:
    """A second replica of a worker joins: its group rebalances, and a stateful stage's
    partitions move to it with their state (restored from the changelog)."""
    fault = Fault(f"second {command} replica joins (rebalance)", time.time())
    workers.start(name, command, state)
    moved = "their state restored from the changelog" if state else "nothing to restore"
    note_when_ready(
        workers,
        name,
        fault,
        "joined and ready in {took:.0f} s; partitions split between two "
        f"{command} replicas, {moved}",
    )
    return fault


def note_when_ready(workers: Workers, name: str, fault: Fault, did: str) -> None:
    """In the background, so that the next fault comes on time: the fault ends, and says
    what happened, once the worker is ready."""

    def watch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if workers.ready(name):
                fault.ended = time.time()
                fault.did = did.format(took=fault.ended - fault.started)
                return
            time.sleep(0.2)
        fault.did = "never ready"

    threading.Thread(target=watch, daemon=True).start()


def broker_outage(broker: LoneBroker, workers: Workers) -> Fault:
    fault = Fault(f"kill -9 broker, restarted after {BROKER_OUTAGE:.0f} s", time.time())
    broker.kill()
    names = list(workers.running)
    waiting: set[str] = set()
    while time.time() < fault.started + BROKER_OUTAGE:
        workers.check_alive()
        waiting |= {n for n in names if n not in waiting and workers.not_ready(n)}
        time.sleep(0.2)
    broker.start()
    back = wait_for(lambda: all(workers.ready(n) for n in names), 240, workers.check_alive)
    fault.ended = time.time()
    fault.did = (
        f"all {len(names)} workers stayed up, {len(waiting)} reported not ready "
        f"during the outage, all ready {back:.0f} s after the broker returned"
    )
    return fault


def leader_killed(cluster: KafkaCluster, settings: KafkaSettings, workers: Workers) -> Fault:
    leader = leader_of(settings, settings.topics.raw, 0)
    fault = Fault(
        f"kill -9 broker {leader} (leader of raw/0), restarted after {BROKER_OUTAGE:.0f} s",
        time.time(),
    )
    cluster.kill(leader)
    while time.time() < fault.started + BROKER_OUTAGE:
        workers.check_alive()
        time.sleep(0.2)
    cluster.start_node(leader)
    fault.ended = time.time()
    fault.did = "all workers stayed up; leaders moved to the other two brokers and back"
    return fault


def rolling_restart(cluster: KafkaCluster, workers: Workers) -> Fault:
    fault = Fault("rolling restart of the three brokers", time.time())
    for node in (1, 2, 3):
        cluster.stop_node(node)
        workers.check_alive()
        cluster.start_node(node)
        time.sleep(3)
    fault.ended = time.time()
    fault.did = "all workers stayed up through three clean broker restarts"
    return fault


def arrived_stories(receiver: Receiver) -> set[int]:
    return {story_of(r.body) for r in receiver.accepted()}


def story_of(body: bytes) -> int:
    found = _STORY.search(body.decode())
    assert found, body[:200]
    return int(found.group(1))


def report(
    faults: list[Fault],
    receiver: Receiver,
    released_at: dict[int, float],
    final: Counter[str],
    expected: set[int],
    *,
    raised_again: int,
) -> None:
    """`raised_again`: alerts a rules incarnation raised that an earlier one, killed, had
    raised too (decided, but killed before the decision reached the changelog); counted
    by both, delivered once (the same alert id, and the notifier's ledger)."""
    accepted = receiver.accepted()
    webhook = standardwebhooks.Webhook(SECRET)
    for request in accepted:
        webhook.verify(request.body, request.headers)
    by_id = Counter(r.headers["webhook-id"] for r in accepted)
    first_arrival: dict[int, float] = {}
    for request in accepted:
        first_arrival.setdefault(story_of(request.body), request.at)

    def window(moment: float) -> str:
        """The fault a story's release fell under (the last one started before it, while
        it lasted or up to 10 s after), else 'no fault'."""
        under = [f for f in faults if f.started <= moment <= f.ended + 10]
        return under[-1].name if under else "no fault"

    late: Counter[str] = Counter()
    repeats: Counter[str] = Counter()
    for story, released in released_at.items():
        if first_arrival.get(story, float("inf")) - released > LATE_SECONDS:
            late[window(released)] += 1
    for request in accepted:
        if by_id[request.headers["webhook-id"]] > 1:
            repeats[window(released_at[story_of(request.body)])] += 1
    rows = [(f.name, f.did, late[f.name], repeats[f.name]) for f in faults]
    rows.append(("no fault", "", late["no fault"], repeats["no fault"]))
    lines = ["| fault | what the pipeline did | alerts delivered late | repeats |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines.append(
        f"\n{len(expected)} stories, {len(set(first_arrival))} alerts arrived, "
        f"{sum(by_id.values())} accepted deliveries, {len(receiver.requests)} attempts; "
        f"late = more than {LATE_SECONDS:.0f} s after release"
    )
    lines.append(
        "counters (all incarnations): "
        + ", ".join(f"{k}={v:g}" for k, v in sorted(final.items()))
        + f"; alerts raised again after a kill: {raised_again}"
    )
    print("\n" + "\n".join(lines))

    assert set(first_arrival) == expected, sorted(expected - set(first_arrival))
    assert max(by_id.values()) == 1, [i for i, n in by_id.items() if n > 1]
    assert final["newsmon_deliveries_total:delivered"] == len(accepted)
    assert final["newsmon_alerts_total"] - raised_again == len(expected)
    assert final["newsmon_dead_letters_total"] == 0
