"""End to end with replicas: `newsmon rules` as three and `newsmon notifier` as two (plain processes,
a state dir each, as on separate hosts), one poller and one extractor, pages released
into a loopback feed over time. One rules replica and one notifier replica are killed
with SIGKILL mid-run. Exactly the expected alerts must arrive, none twice by
`webhook-id`: what the killed replicas decided and delivered is replayed by the
replicas that take their partitions over (the `rules.state` and `notifier.state`
changelogs).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks
from newsroom import SEED_RULES, Newsroom, plain_page
from notifier_receiver import Receiver
from test_pipeline_kafka import SECRET, running_workers, tails, worker_command, worker_env

from pipeline.config import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORDS = [
    "harbour",
    "council",
    "budget",
    "river",
    "train",
    "school",
    "market",
    "winter",
    "farmers",
    "bridge",
    "festival",
    "museum",
    "library",
    "hospital",
    "teachers",
    "airport",
    "village",
    "engineers",
    "weather",
    "harvest",
    "coast",
    "factory",
    "orchestra",
    "election",
    "students",
    "mountain",
    "ferry",
    "garden",
    "bakery",
    "cyclists",
    "theatre",
    "pension",
    "courier",
    "reservoir",
    "vineyard",
    "lighthouse",
    "tramway",
    "glacier",
    "archive",
    "stadium",
    "canal",
]
BATCHES = 3
PER_BATCH = 4
TERM = "unbundling"  # the rule without an entity type: any page saying it fires once


def released_page(n: int) -> tuple[str, str, str]:
    """(path, title, page): distinct prose (no near-duplicates) that says the watched term."""
    rng = random.Random(n)
    sentences = [
        " ".join(rng.sample(WORDS, 14)).capitalize() + "." for _ in range(5)
    ]  # fmt: skip
    sentences.insert(2, f"Officials in district {n} said they were opposed to {TERM} the service.")
    title = f"District {n} debates {rng.choice(WORDS)} plan"
    return f"/local/district-{n}", title, plain_page(title, "\n".join(sentences))


class ReleasingNewsroom(Newsroom):
    def release_districts(self, first: int, count: int) -> None:
        """Serve `count` new pages and list them in the feed (`Newsroom.release`).

        Not an override of `release`: one with another meaning (pages added but never
        listed, as the feed came to list only `listed` paths) kept this test waiting for
        stories the feed did not show.
        """
        paths = []
        for n in range(first, first + count):
            path, title, page = released_page(n)
            self.pages[path] = page
            self.titles[path] = title
            paths.append(path)
        self.release(*paths)
        listed = self.feed()
        assert all(f"{self.base}{p}<" in listed for p in paths), "released pages not in the feed"


@pytest.fixture
def newsroom(shared_dir: Path) -> Iterator[ReleasingNewsroom]:
    site = ReleasingNewsroom(shared_dir)
    yield site
    site.close()


def test_three_rules_and_two_notifier_replicas_survive_kill_9_without_repeats(
    kafka_settings: KafkaSettings,
    newsroom: ReleasingNewsroom,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {newsroom.feed_url}\n    name: newsroom\n    interval: 2\n")
    env = worker_env(kafka_settings) | {"NEWSMON_POLLER__MIN_INTERVAL_SECONDS": "1"}
    names = ["poller", "extractor", "rules-0", "rules-1", "rules-2", "notifier-0", "notifier-1"]

    def command(name: str) -> list[str]:
        command = worker_command(
            name.split("-", maxsplit=1)[0], feeds, tmp_path / "state", receiver.url()
        )
        if "-" in name:  # a state dir of its own, as on another host
            at = command.index("--state-dir") + 1
            command[at] = str(tmp_path / "state" / name)
        return command

    expected = 3 + BATCHES * PER_BATCH
    with running_workers({n: command(n) for n in names}, env, tmp_path) as processes:
        wait_delivered(receiver, 3, processes, tmp_path, timeout=300)
        for batch in range(BATCHES):
            newsroom.release_districts(batch * PER_BATCH, PER_BATCH)
            if batch == 1:  # mid-run: one replica of each stateful stage dies hard
                time.sleep(3)
                processes["rules-1"].send_signal(signal.SIGKILL)
                processes["notifier-0"].send_signal(signal.SIGKILL)
                processes["rules-1"].wait(timeout=30)
                processes["notifier-0"].wait(timeout=30)
            wait_delivered(receiver, 3 + (batch + 1) * PER_BATCH, processes, tmp_path, timeout=300)
        time.sleep(10)  # a repeat would arrive by now

        webhook = standardwebhooks.Webhook(SECRET)
        for request in receiver.requests:
            webhook.verify(request.body, request.headers)
        alerts = [r.json() for r in receiver.requests]
        rules = Counter(a["rule_id"] for a in alerts)
        assert rules == {**dict.fromkeys(SEED_RULES, 1), TERM: 1 + BATCHES * PER_BATCH}, tails(
            tmp_path, names
        )
        ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
        assert len(ids) == expected
        assert max(ids.values()) == 1, f"delivered twice: {[i for i, n in ids.items() if n > 1]}"


def wait_delivered(
    receiver: Receiver,
    count: int,
    processes: dict[str, subprocess.Popen[bytes]],
    folder: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        alive = {n for n, p in processes.items() if p.poll() is None or p.returncode == -9}
        assert alive == set(processes), f"a worker died: {set(processes) - alive}"
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} alerts\n" + tails(
            folder, list(processes)
        )
        time.sleep(0.5)
