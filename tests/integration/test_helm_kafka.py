"""The chart's KEDA ScaledObjects watch the consumer groups and topics the workers really
join: the extractor, rules and notifier run as the rendered pods would (their arguments,
config files and environment from `helm template`) against a real broker, which then
says which groups have members and what they subscribed to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helm_chart import REQUIRED_SETS, Manifest, of_kind, pod_command, render, workload
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pipeline.config import KafkaSettings

pytestmark = pytest.mark.integration

CONSUMERS = ("extractor", "rules", "notifier")


def chart_for(kafka: KafkaSettings) -> tuple[Manifest, ...]:
    """The chart with KEDA on (rules as a Deployment, so it has a ScaledObject too), on
    this test's broker, group prefix and topics."""
    return render(
        *REQUIRED_SETS,
        "--set", f"config.kafka.bootstrap_servers={kafka.bootstrap_servers}",
        "--set", f"config.kafka.group_prefix={kafka.group_prefix}",
        "--set-json", f"config.kafka.topics={kafka.topics.model_dump_json()}",
        "--set", f"config.kafka.partitions={kafka.partitions}",
        "--set", "config.kafka.replication_factor=1",
        "--set", "autoscaling.keda.enabled=true",
        "--set", "workers.rules.kind=Deployment",
        "--set", "workers.rules.autoscaling.enabled=true",
    )  # fmt: skip


def watched(manifests: tuple[Manifest, ...]) -> dict[str, str]:
    """{consumer group: topic} of every ScaledObject's Kafka trigger."""
    found = {}
    for scaled in of_kind(manifests, "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        found[trigger["metadata"]["consumerGroup"]] = trigger["metadata"]["topic"]
    return found


@contextmanager
def running_pods(manifests: tuple[Manifest, ...], folder: Path) -> Iterator[None]:
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    try:
        for worker in CONSUMERS:
            argv, env = pod_command(manifests, workload(manifests, worker), folder / worker)
            env.update(
                NEWSMON_METRICS__HOST="127.0.0.1",
                NEWSMON_METRICS__PORT="0",  # the pods' port may be taken here
                NEWSMON_EXTRACTION__WORKERS="1",  # one spaCy process is enough to join
                NEWSMON_KAFKA__SESSION_TIMEOUT_SECONDS="6",
            )
            log = (folder / f"{worker}.log").open("w")
            logs.append(log)
            command = [sys.executable, "-m", "pipeline.cli", *argv]
            env = {**base, **env}
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def joined(admin: KafkaAdminClient, prefix: str) -> dict[str, set[str]]:
    """{group: topics its members subscribed to} for the groups under `prefix` with members."""
    try:
        mine = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
        described: dict[str, Any] = admin.describe_groups(mine) if mine else {}
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return {}  # a coordinator still loading: ask again
    found = {}
    for group, info in described.items():
        subscriptions = [m["member_metadata"] for m in info["members"]]
        # a member still joining has no subscription decoded yet (empty bytes)
        topics = {t for s in subscriptions if isinstance(s, dict) for t in s["topics"]}
        if topics:
            found[group] = topics
    return found


def test_scaled_objects_watch_the_groups_and_topics_the_workers_join(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    manifests = chart_for(kafka_settings)
    expected = watched(manifests)
    assert len(expected) == len(CONSUMERS)
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    try:
        with running_pods(manifests, tmp_path):
            deadline = time.monotonic() + 120
            while not set(expected) <= set(found := joined(admin, kafka_settings.group_prefix)):
                logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.log")}
                assert time.monotonic() < deadline, f"joined {found}, expected {expected}; {logs}"
                time.sleep(1.0)
    finally:
        admin.close()
    for group, topic in expected.items():
        assert found[group] == {topic}, (
            f"{group}: subscribed to {found[group]}, KEDA watches {topic}"
        )
