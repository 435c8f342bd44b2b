"""Languages end to end (#18): a Chinese, a Russian and a French story about the seed's events
each raise the qin-gang alert, through `newsmon run` and through the four Kafka workers.

The site on 127.0.0.1 serves the three pages of tests/testdata/languages (the Chinese one
declares no language, so it is detected; the others say theirs) and a feed that names no
language. The rules are the seed's three with translated terms. Expected: qin-gang on all
three stories (French by its French NER entities; Chinese and Russian, which have no model
on PyPI, by the `unread_entities: terms` policy), tesla and unbundling as the unit tests
show per language.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from languages import RULES_FILE, page, stories
from newsroom import Newsroom, Story
from notifier_receiver import Receiver
from test_pipeline_kafka import WORKERS, running_workers, worker_command, worker_env
from test_run_local import child_env, newsmon_run, verified_alerts

from pipeline.config import KafkaSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# path -> (language, what the page declares)
PAGES = {
    "/zh/musk-qin": ("zh", None),
    "/ru/musk-qin": ("ru", "same"),
    "/fr/musk-qin": ("fr", "same"),
}
EXPECTED = {
    ("qin-gang", "/zh/musk-qin"), ("tesla", "/zh/musk-qin"), ("unbundling", "/zh/musk-qin"),
    ("qin-gang", "/ru/musk-qin"), ("tesla", "/ru/musk-qin"), ("unbundling", "/ru/musk-qin"),
    ("qin-gang", "/fr/musk-qin"), ("unbundling", "/fr/musk-qin"),
}  # fmt: skip


def world_press_stories() -> dict[str, Story]:
    """The three pages, each with its title and standfirst in the feed (which names no language)."""
    return {
        path: Story(
            stories()[language]["title"],
            page(language, declared=declared),
            summary=stories()[language]["standfirst"],
        )
        for path, (language, declared) in PAGES.items()
    }


@pytest.fixture
def world_press() -> Iterator[Newsroom]:
    site = Newsroom(stories=world_press_stories())
    yield site
    site.close()


def delivered(receiver: Receiver, base: str) -> set[tuple[str, str]]:
    return {(a.rule_id, a.story.url.removeprefix(base)) for a in verified_alerts(receiver)}


def test_newsmon_run_alerts_on_chinese_russian_and_french_stories(
    world_press: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    feeds = world_press.write_feeds_file(tmp_path)
    command = newsmon_run(feeds, tmp_path / "state", receiver.url(), "--once", rules=RULES_FILE)
    done = subprocess.run(
        command, env=child_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    receiver.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert delivered(receiver, world_press.base) == EXPECTED
    assert len(receiver.requests) == len(EXPECTED)
    assert "**秦刚**" in done.stdout and "**Цинь Ган**" in done.stdout  # the original text


def test_kafka_workers_alert_on_chinese_russian_and_french_stories(
    kafka_settings: KafkaSettings, world_press: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    feeds = world_press.write_feeds_file(tmp_path)
    env = worker_env(kafka_settings)
    env["NEWSMON_EXTRACTION__WORKERS"] = "1"
    state, hook = tmp_path / "state", receiver.url()
    commands = {n: worker_command(n, feeds, state, hook, rules=RULES_FILE) for n in WORKERS}
    with running_workers(commands, env, tmp_path) as processes:
        deadline = time.monotonic() + 240
        while len(receiver.requests) < len(EXPECTED) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes.values()), "a worker died"
            time.sleep(0.5)
        time.sleep(5)  # a duplicate or a false alarm would arrive by now
        assert delivered(receiver, world_press.base) == EXPECTED
        assert len(receiver.requests) == len(EXPECTED)
