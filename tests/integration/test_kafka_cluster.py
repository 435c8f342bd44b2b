"""Three brokers: replicated topics, and acknowledged records that outlive their leader.

The fault model of a production cluster starts here: a broker dies hard (kill -9)
while it leads a busy partition, and later comes back; brokers are restarted one
by one, as a rolling upgrade does. A record the producer saw acknowledged
(acks=all, min.insync.replicas 2) must still be there afterwards, once.
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import KafkaCluster
from kafka import KafkaAdminClient, KafkaConsumer

from pipeline.config import KafkaSettings, TopicNames
from pipeline.corridor.kafka.clients import Producer, create_topics
from pipeline.corridor.records import Output

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("collect_client_garbage"),
]


@pytest.fixture
def collect_client_garbage() -> Iterator[None]:
    """Close the sockets kafka-python 3.0 leaves behind when a connection to a killed or
    stopped broker fails: `kafka.net.inet` raises without closing the socket it opened, and
    its coroutine frames keep it alive until a later garbage collection warns about it
    (a ResourceWarning, an error in this suite) somewhere far from this test."""
    yield
    gc.collect()
    for sock in [o for o in gc.get_objects() if isinstance(o, socket.socket)]:
        if sock.fileno() != -1 and _failed_connection(sock):
            sock.close()


def _failed_connection(sock: socket.socket) -> bool:
    """Open, not listening, and connected to nothing."""
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return False
        sock.getpeername()
    except OSError:
        return True
    return False


def cluster_settings(cluster: KafkaCluster) -> KafkaSettings:
    run = uuid.uuid4().hex[:8]
    names = {field: f"cluster-{run}.{field}" for field in TopicNames.model_fields}
    return KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        group_prefix=f"cluster-{run}",
        topics=TopicNames(**names),
        partitions=3,
        replication_factor=3,
    )


def leader_of(settings: KafkaSettings, topic: str, partition: int) -> int:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = admin.describe_topics([topic])[0]["partitions"]
        return int(next(p["leader_id"] for p in described if p["partition_index"] == partition))
    finally:
        admin.close()


def read_all(settings: KafkaSettings, topic: str, expected: int) -> Counter[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    seen: Counter[bytes] = Counter()
    deadline = time.monotonic() + 60
    try:
        while sum(seen.values()) < expected and time.monotonic() < deadline:
            for record in consumer:
                seen[record.value] += 1
    finally:
        consumer.close()
    return seen


def publish_numbered(producer: Producer, topic: str, start: int, count: int) -> list[bytes]:
    values = [f"record-{n}".encode() for n in range(start, start + count)]
    producer.publish([Output(topic, value.decode(), value) for value in values])
    return values


def test_topics_create_replicates_every_topic_across_three_brokers(
    kafka_cluster: KafkaCluster,
) -> None:
    settings = cluster_settings(kafka_cluster)
    subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "topics", "create"],
        check=True,
        env={
            "NEWSMON_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "NEWSMON_KAFKA__REPLICATION_FACTOR": "3",
            "NEWSMON_KAFKA__PARTITIONS": "3",
            "NEWSMON_KAFKA__TOPICS": settings.topics.model_dump_json(),
            "PATH": "/usr/bin:/bin",
        },
    )
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = admin.describe_topics(list(settings.topics.model_dump().values()))
    finally:
        admin.close()
    assert len(described) == len(TopicNames.model_fields)
    for topic in described:
        assert [len(p["replica_nodes"]) for p in topic["partitions"]] == [3, 3, 3], topic["topic"]


def test_acknowledged_records_outlive_a_killed_leader_and_a_rolling_restart(
    kafka_cluster: KafkaCluster,
) -> None:
    settings = cluster_settings(kafka_cluster)
    create_topics(settings)
    topic = settings.topics.raw
    producer = Producer(settings)
    sent: list[bytes] = []
    try:
        sent += publish_numbered(producer, topic, 0, 50)
        leader = leader_of(settings, topic, 0)
        kafka_cluster.kill(leader)
        sent += publish_numbered(producer, topic, 50, 50)  # acks=all with two in sync
        kafka_cluster.start_node(leader)
        for node in (1, 2, 3):  # a rolling restart, one clean stop at a time
            kafka_cluster.stop_node(node)
            sent += publish_numbered(producer, topic, 100 + 20 * node, 20)
            kafka_cluster.start_node(node)
    finally:
        producer.close()
    seen = read_all(settings, topic, len(sent))
    assert set(seen) == set(sent), "an acknowledged record was lost"
    assert max(seen.values()) == 1, "the idempotent producer wrote a record twice"
