"""The broker goes away (kill -9) and comes back: the four workers ride it out.

A broker of its own (not the session's, which other tests use) under the four workers
as separate processes. It is killed while stories wait in the feed, and restarted
about 20 s later. Every worker must stay up, answer `/readyz` 503 (naming Kafka)
and `/healthz` 200 while it waits, be ready again afterwards, and the pipeline must
then deliver every expected alert exactly once by webhook-id. A second test checks
the other side of the promise: past `kafka.unavailable_exit_seconds` a worker exits
with status 1 and a log line that says why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import standardwebhooks
from conftest import KAFKA_SCRIPT, _wait_for_metadata, pick_free_port
from newsroom import SEED_RULES, Newsroom
from notifier_receiver import Receiver
from test_kafka_cluster import collect_client_garbage  # noqa: F401 - a fixture
from test_pipeline_kafka import (
    ROOT,
    SECRET,
    metrics_port,
    running_workers,
    scrape,
    tails,
    total,
    worker_command,
    worker_env,
)

from pipeline.config import KafkaSettings, TopicNames
from pipeline.corridor.kafka.clients import create_topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("collect_client_garbage"),
]

WORKERS = ("poller", "extractor", "rules", "notifier")
OUTAGE_SECONDS = 20.0
EXIT_LINE = "broker unreachable for longer than kafka.unavailable_exit_seconds, exiting"


class LoneBroker:
    """One KRaft node in its own directory, for a test that kills it."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="newsmon-outage-"))
        self.port, self.controller = pick_free_port(), pick_free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m"}
        command = ["bash", str(KAFKA_SCRIPT), "start", str(self.workdir), str(self.port),
                   str(self.controller)]  # fmt: skip
        subprocess.run(command, check=True, env=env)
        _wait_for_metadata(self.bootstrap, time.monotonic() + 90)

    def kill(self) -> None:
        """kill -9: no clean shutdown, connections refused at once."""
        pid = int((self.workdir / "broker.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop", str(self.workdir)], check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


@pytest.fixture
def lone_broker() -> Iterator[LoneBroker]:
    broker = LoneBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def broker_settings(broker: LoneBroker) -> KafkaSettings:
    run = uuid.uuid4().hex[:8]
    names = {field: f"outage-{run}.{field}" for field in TopicNames.model_fields}
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        group_prefix=f"outage-{run}",
        topics=TopicNames(**names),
        partitions=2,
    )
    create_topics(settings)
    return settings


def outage_env(settings: KafkaSettings, exit_after: float) -> dict[str, str]:
    env = worker_env(settings)
    env.update(
        NEWSMON_KAFKA__UNAVAILABLE_EXIT_SECONDS=str(exit_after),
        NEWSMON_POLLER__MIN_INTERVAL_SECONDS="0.5",
        NEWSMON_POLLER__MAX_BACKOFF_SECONDS="3",
        NEWSMON_EXTRACTION__WORKERS="1",
    )
    return env


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError as exc:
        return 0, str(exc)
    return answer.status_code, answer.text


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    check: Callable[[], None] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if check is not None:
            check()
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.25)


def test_workers_ride_out_a_broker_killed_and_restarted(
    lone_broker: LoneBroker, shared_dir: Path, receiver: Receiver, tmp_path: Path
) -> None:
    settings = broker_settings(lone_broker)
    newsroom = Newsroom(shared_dir, listed={"/culture/tesla-museum", "/business/rotterdam"})
    feeds = newsroom.write_feeds_file(tmp_path, interval=1)
    commands = {n: worker_command(n, feeds, tmp_path / "state", receiver.url()) for n in WORKERS}
    env = outage_env(settings, exit_after=300)
    try:
        with running_workers(commands, env, tmp_path) as processes:

            def all_alive() -> None:
                dead = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
                assert not dead, f"workers exited: {dead}\n{tails(tmp_path, lines=25)}"

            ports = {name: metrics_port(tmp_path / f"{name}.log", timeout=120) for name in WORKERS}

            def ready() -> bool:
                return all(probe(p, "/readyz")[0] == 200 for p in ports.values())

            def not_ready() -> bool:
                return all(probe(p, "/readyz")[0] == 503 for p in ports.values())

            def matched() -> bool:
                return total(scrape(ports["rules"]), "newsmon_stories_matched_total") == 2

            wait_until(ready, 180, "every worker is ready", all_alive)
            wait_until(matched, 180, "the two stories without alerts went through", all_alive)

            lone_broker.kill()
            down_at = time.monotonic()
            newsroom.release("/world/musk-qin", "/partners/musk-qin-syndicated")
            wait_until(not_ready, OUTAGE_SECONDS, "every worker reports not ready", all_alive)
            for name, port in ports.items():
                status, body = probe(port, "/readyz")
                assert status == 503 and "Kafka" in body, (name, status, body)
                assert probe(port, "/healthz")[0] == 200, f"{name} is not live while it waits"
            while time.monotonic() - down_at < OUTAGE_SECONDS:
                all_alive()
                time.sleep(0.5)

            lone_broker.start()
            wait_until(ready, 180, "every worker is ready again", all_alive)
            wait_until(lambda: len(receiver.accepted()) >= 3, 180, "all alerts came", all_alive)
            time.sleep(8)  # a repeat would arrive by now
            all_alive()

            webhook = standardwebhooks.Webhook(SECRET)
            for request in receiver.accepted():
                webhook.verify(request.body, request.headers)
            ids = [r.headers["webhook-id"] for r in receiver.accepted()]
            assert len(ids) == len(set(ids)) == 3, ids
            rules = sorted(r.json()["rule_id"] for r in receiver.accepted())
            assert rules == sorted(SEED_RULES), tails(tmp_path, lines=25)
            for name, port in ports.items():
                samples = scrape(port)
                assert total(samples, "newsmon_kafka_outages_total") >= 1, name
                assert total(samples, "newsmon_kafka_unavailable_seconds_total") >= 5, name
    finally:
        newsroom.close()
    codes = {name: process.returncode for name, process in processes.items()}
    assert codes == dict.fromkeys(WORKERS, 0), tails(tmp_path, lines=25)


def test_a_worker_exits_once_the_broker_is_away_longer_than_the_deadline(
    lone_broker: LoneBroker, shared_dir: Path, tmp_path: Path
) -> None:
    settings = broker_settings(lone_broker)
    newsroom = Newsroom(shared_dir, listed=set())
    feeds = newsroom.write_feeds_file(tmp_path)
    log_path = tmp_path / "rules.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            worker_command("rules", feeds, tmp_path / "state", ""),
            env=outage_env(settings, exit_after=10), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            port = metrics_port(log_path, timeout=120)
            wait_until(lambda: probe(port, "/readyz")[0] == 200, 120, "the worker is ready")
            lone_broker.kill()
            killed_at = time.monotonic()
            time.sleep(5)
            assert worker.poll() is None, "the worker exited before its deadline"
            code = worker.wait(timeout=90)
            waited = time.monotonic() - killed_at
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            newsroom.close()
    text = log_path.read_text()
    assert code == 1, text[-3000:]
    assert EXIT_LINE in text, text[-3000:]
    assert waited >= 10, waited
