"""History on Kafka: `newsmon backtest` reads the enriched topic by time without joining or
committing any group, and the rules worker's reload flood check reads its tail."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import pick_free_port
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from pipeline.config import KafkaSettings
from pipeline.models import EnrichedStory, story_id_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOW = time.time()
DAY = 86400.0
TESLA_RULES = "rules:\n  - id: tesla\n    terms: [Tesla]\n"
WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def enriched(n: int, text: str) -> EnrichedStory:
    url = f"https://news.example.com/{n}"
    return EnrichedStory(
        id=story_id_for(url), url=url, title=f"Story {n}", text=text, text_source="full_text",
        published=WHEN, first_seen=WHEN, enriched_at=WHEN, feed="wire",
    )  # fmt: skip


# Three days ago: three about Tesla and one not; an hour ago: two about Tesla and three not.
# Every text says "percent"; texts differ, so no two are near-duplicates.
OLD = [enriched(n, f"Tesla said sales rose {n} percent in the {n}th week.") for n in range(3)]
OLD.append(enriched(3, "Rivian shares fell 3 percent before the open."))
RECENT = [enriched(n, f"Tesla cut prices by {n} percent on its {n}th model.") for n in (4, 5)]
RECENT += [enriched(n, f"The harbour strike cost {n} percent of a week.") for n in (6, 7, 8)]


def publish(settings: KafkaSettings) -> None:
    """The stories with the timestamps of when the extractor would have published them."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for stories, stamp in ((OLD, NOW - 3 * DAY), (RECENT, NOW - 3600)):
        for story in stories:
            producer.send(
                settings.topics.enriched, key=story.id.encode(), value=story.to_bytes(),
                timestamp_ms=int(stamp * 1000),
            )  # fmt: skip
    producer.flush()
    producer.close()


def child_env(settings: KafkaSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env |= {
        "NEWSMON_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "NEWSMON_KAFKA__GROUP_PREFIX": settings.group_prefix,
        "NEWSMON_METRICS__PORT": "0",
        **extra,
    }
    for name, topic in settings.topics.model_dump().items():
        env[f"NEWSMON_KAFKA__TOPICS__{name.upper()}"] = topic
    return env


def rules_worker(rules: Path, state: Path) -> list[str]:
    """`newsmon rules` with the shipped config and the given rules file."""
    return [
        sys.executable, "-m", "pipeline.cli", "rules",
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(rules),
        "--state-dir", str(state),
    ]  # fmt: skip


def backtest(settings: KafkaSettings, rules: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "pipeline.cli", "backtest", "--source", "kafka",
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(rules),
        "--state-dir", str(rules.parent / "state"), *flags,
    ]  # fmt: skip
    return subprocess.run(
        command, env=child_env(settings), capture_output=True, text=True, timeout=180, cwd=ROOT
    )


def live_group_commits(settings: KafkaSettings, group: str) -> None:
    """The live match step's group, as if it had read one story of each partition."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    partitions = [TopicPartition(settings.topics.enriched, p) for p in range(2)]
    consumer.assign(partitions)
    consumer.commit({tp: OffsetAndMetadata(1, "", -1) for tp in partitions})
    consumer.close(autocommit=False)


def groups_and_offsets(admin: KafkaAdminClient, group: str) -> tuple[set[str], dict[str, int]]:
    groups = {g["group_id"] for g in admin.list_groups()}
    offsets = admin.list_group_offsets({group: None})[group]
    return groups, {f"{tp.topic}/{tp.partition}": meta.offset for tp, meta in offsets.items()}


def test_backtest_reads_the_topic_by_time_and_joins_no_group(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    publish(kafka_settings)
    live = f"{kafka_settings.group_prefix}-rules-match"
    live_group_commits(kafka_settings, live)
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    before = groups_and_offsets(admin, live)
    rules = tmp_path / "rules.yaml"
    rules.write_text(TESLA_RULES, encoding="utf-8")
    try:
        recent = backtest(kafka_settings, rules, "--since", "1d", "--jsonl")
        assert recent.returncode == 0, recent.stderr[-3000:]
        alerts = [json.loads(line) for line in recent.stdout.splitlines()]
        assert sorted(a["story"]["id"] for a in alerts) == sorted(s.id for s in RECENT[:2])
        assert "newsmon backtest: 5 stories from the topic" in recent.stderr

        start, end = (datetime.fromtimestamp(NOW - d * DAY, UTC).isoformat() for d in (4, 2))
        old = backtest(kafka_settings, rules, "--from", start, "--to", end)
        assert old.returncode == 0, old.stderr[-3000:]
        assert "4 stories from the topic" in old.stdout
        assert re.search(r"\ntesla +3\n", old.stdout), old.stdout
        assert "Story 2  [wire]" in old.stdout

        assert groups_and_offsets(admin, live) == before  # no group joined, none committed
        assert live in before[0]
    finally:
        admin.close()


def test_an_unreachable_broker_is_a_clear_error_within_the_timeout(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TESLA_RULES, encoding="utf-8")
    nowhere = kafka_settings.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{pick_free_port()}"}
    )
    started = time.monotonic()
    done = backtest(nowhere, rules, "--timeout", "2")
    assert done.returncode == 1
    assert "newsmon: broker_unreachable: no Kafka broker answered at 127.0.0.1:" in done.stderr
    assert time.monotonic() - started < 60  # the interpreter's start included, on a busy host


def metrics_of(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def wait_for(condition: Callable[[], object], deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def test_a_reload_that_would_flood_is_logged_and_counted_by_the_rules_worker(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    publish(kafka_settings)
    rules = tmp_path / "rules.yaml"
    rules.write_text(TESLA_RULES, encoding="utf-8")
    port = pick_free_port()
    env = child_env(
        kafka_settings, NEWSMON_METRICS__PORT=str(port), NEWSMON_RULES__RELOAD_CHECK_SECONDS="0.5",
        NEWSMON_RULES__FLOOD_FACTOR="1.8", NEWSMON_RULES__FLOOD_MIN_ALERTS="3",
    )  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        worker = subprocess.Popen(
            rules_worker(rules, tmp_path / "state"),
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            flood = 'newsmon_rule_floods_total{kind="changed"} 1.0'
            assert wait_for(
                lambda: "newsmon_rules_loaded 1.0" in metrics_of(port), time.monotonic() + 120
            )
            time.sleep(1.0)  # a distinct mtime for the edit
            rules.write_text(TESLA_RULES.replace("[Tesla]", "[percent]"), encoding="utf-8")
            assert wait_for(lambda: flood in metrics_of(port), time.monotonic() + 120), (
                log.read_text(errors="replace")[-3000:]
            )
            assert worker.poll() is None
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert "reloaded rule would raise far more alerts than before" in text
    assert "rule=tesla kind=changed alerts_now=9 alerts_before=5 stories=9" in text


def test_topics_create_keeps_history_days_on_the_enriched_topic(
    kafka_settings: KafkaSettings,
) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    from pipeline.corridor.kafka.clients import DAY_MS, create_topics, topic_retention_ms

    topic = kafka_settings.topics.enriched
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    try:
        assert topic_retention_ms(admin, topic) == 14 * DAY_MS  # created with the default
        shorter = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "3600000"})
        admin.alter_configs([shorter], incremental=True)
        assert create_topics(kafka_settings, history_days=20) == []
        assert topic_retention_ms(admin, topic) == 20 * DAY_MS  # raised to the history
        create_topics(kafka_settings, history_days=5)
        assert topic_retention_ms(admin, topic) == 20 * DAY_MS  # never lowered
        assert topic_retention_ms(admin, kafka_settings.topics.raw) == 7 * DAY_MS  # broker's
    finally:
        admin.close()
