"""Shared fixtures: a real Kafka broker (ours, or NEWSMON_KAFKA__BOOTSTRAP_SERVERS)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline.config import KafkaSettings, TopicNames
from pipeline.corridor.kafka.clients import create_topics

if TYPE_CHECKING:
    from newsroom import Newsroom
    from notifier_receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
KAFKA_SCRIPT = ROOT / "scripts" / "kafka.sh"


def pick_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: tests read corpora from ../shared next to the checkout")
    return SHARED


@pytest.fixture
def newsroom(shared_dir: Path) -> Iterator[Newsroom]:
    """The seed news site on 127.0.0.1 (tests/integration/newsroom.py), all four stories listed."""
    from newsroom import Newsroom  # end-to-end helpers: imported by the tests that use them

    site = Newsroom(shared_dir)
    yield site
    site.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (tests/integration/notifier_receiver.py)."""
    from notifier_receiver import Receiver

    server = Receiver()
    yield server
    server.close()


def _wait_for_metadata(bootstrap: str, deadline: float) -> None:
    from kafka import KafkaAdminClient

    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            admin.list_topics()
            admin.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The broker's address: NEWSMON_KAFKA__BOOTSTRAP_SERVERS if set, else one we start."""
    existing = os.environ.get("NEWSMON_KAFKA__BOOTSTRAP_SERVERS")
    if existing:
        _wait_for_metadata(existing, time.monotonic() + 60)
        yield existing
        return
    workdir = Path(tempfile.mkdtemp(prefix="newsmon-kafka-"))
    port, controller = pick_free_port(), pick_free_port()
    subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "start", str(workdir), str(port), str(controller)], check=True
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_for_metadata(bootstrap, time.monotonic() + 60)
        yield bootstrap
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop", str(workdir)], check=False)


class KafkaCluster:
    """Three KRaft nodes started by scripts/kafka.sh; a test may kill, stop and start nodes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = [pick_free_port() for _ in range(3)]
        self.controllers = [pick_free_port() for _ in range(3)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def script(self, *args: str) -> None:
        env = {**os.environ, "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m"}
        subprocess.run(["bash", str(KAFKA_SCRIPT), *args], check=True, env=env)

    def start(self) -> None:
        ports = ",".join(map(str, self.ports))
        self.script("cluster-start", str(self.workdir), ports, ",".join(map(str, self.controllers)))

    def kill(self, node: int) -> None:
        self.script("node-kill", str(self.workdir), str(node))

    def stop_node(self, node: int) -> None:
        self.script("node-stop", str(self.workdir), str(node))

    def start_node(self, node: int) -> None:
        self.script("node-start", str(self.workdir), str(node))

    def stop(self) -> None:
        self.script("cluster-stop", str(self.workdir))


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """Three brokers (replication 3, min.insync.replicas 2), started for the tests that ask."""
    cluster = KafkaCluster(Path(tempfile.mkdtemp(prefix="newsmon-cluster-")))
    cluster.start()
    try:
        _wait_for_metadata(cluster.bootstrap, time.monotonic() + 90)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings with topics of their own for one test, already created."""
    run = uuid.uuid4().hex[:8]
    names = {field: f"test-{run}.{field}" for field in TopicNames.model_fields}
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        group_prefix=f"test-{run}",
        topics=TopicNames(**names),
        partitions=2,
        retry_backoff_seconds=0.05,
        poll_timeout_seconds=0.2,
        session_timeout_seconds=6,
    )
    create_topics(settings)
    return settings
