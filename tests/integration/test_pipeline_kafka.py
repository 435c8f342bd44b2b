"""End to end on a real broker: the four workers as separate processes, loopback HTTP only.

A news site on 127.0.0.1 carries the seed story (in a page with navigation, a sidebar
and a comment form), the same story syndicated under another URL, a story about
Nikola Tesla and an unrelated one. Exactly the three seed alerts must reach the
webhook receiver, signed, once each, and the counters each worker exports must agree.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import standardwebhooks
from newsroom import SEED_RULES, Newsroom
from notifier_receiver import Receiver
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import KafkaSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WORKERS = ("poller", "extractor", "rules", "notifier")
METRICS_LINE = re.compile(r"metrics listening host=\S+ port=(\d+)")


def worker_env(settings: KafkaSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        NEWSMON_KAFKA__BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        NEWSMON_KAFKA__GROUP_PREFIX=settings.group_prefix,
        NEWSMON_KAFKA__PARTITIONS=str(settings.partitions),
        NEWSMON_KAFKA__TOPICS=settings.topics.model_dump_json(),
        NEWSMON_KAFKA__SESSION_TIMEOUT_SECONDS="6",
        NEWSMON_HTTP__ALLOW_PRIVATE_NETWORKS="true",
        NEWSMON_METRICS__HOST="127.0.0.1",
        # Port 0: each worker binds a free port and logs it. A port picked here and bound
        # later can be taken meanwhile by any outgoing connection (same ephemeral range).
        NEWSMON_METRICS__PORT="0",
    )
    return env


def metrics_port(log: Path, timeout: float = 60.0) -> int:
    """The port a worker logged as `metrics listening host=... port=N`."""
    deadline = time.monotonic() + timeout
    while True:
        found = METRICS_LINE.search(log.read_text())
        if found:
            return int(found.group(1))
        assert time.monotonic() < deadline, f"{log.name}: no metrics port logged"
        time.sleep(0.2)


def worker_command(
    name: str, feeds: Path, state: Path, hook: str, *, rules: Path | None = None
) -> list[str]:
    """The `newsmon <name>` command line; `rules`: the rules worker's file (else its default)."""
    command = [sys.executable, "-m", "pipeline.cli", name, "--feeds", str(feeds)]
    if name != "extractor":
        command += ["--state-dir", str(state / name)]
    if name == "rules" and rules is not None:
        command += ["--rules", str(rules)]
    if name == "notifier":
        command += ["--webhook", hook, "--webhook-secret", SECRET]
    return command


@contextmanager
def running_workers(
    commands: Mapping[str, list[str]], env: Mapping[str, str], folder: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Each command as a process logging to <folder>/<name>.log; on the way out, those still
    running get SIGTERM and every one is waited for (its exit code in `returncode`)."""
    logs = {name: (folder / f"{name}.log").open("w") for name in commands}
    processes = {
        name: subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=logs[name], stderr=subprocess.STDOUT
        )
        for name, command in commands.items()
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.wait(timeout=90)
        for log in logs.values():
            log.close()


def tails(folder: Path, names: Iterable[str] = WORKERS, lines: int = 15) -> str:
    """The last lines of each worker's log, for an assertion message."""
    return "\n".join(
        f"--- {name}\n" + "\n".join((folder / f"{name}.log").read_text().splitlines()[-lines:])
        for name in names
        if (folder / f"{name}.log").exists()
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_four_workers_deliver_exactly_the_three_seed_alerts(
    kafka_settings: KafkaSettings, newsroom: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    feeds = newsroom.write_feeds_file(tmp_path)
    commands = {n: worker_command(n, feeds, tmp_path / "state", receiver.url()) for n in WORKERS}
    with running_workers(commands, worker_env(kafka_settings), tmp_path) as processes:
        deadline = time.monotonic() + 180
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes.values()), "a worker died"
            time.sleep(0.5)
        time.sleep(8)  # anything extra (a duplicate, a false alarm) would arrive by now
        ports = {name: metrics_port(tmp_path / f"{name}.log") for name in WORKERS}

        webhook = standardwebhooks.Webhook(SECRET)
        for request in receiver.requests:
            webhook.verify(request.body, request.headers)
        alerts = [r.json() for r in receiver.requests]
        assert sorted(a["rule_id"] for a in alerts) == sorted(SEED_RULES), tails(tmp_path)
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 3

        poller, extractor = scrape(ports["poller"]), scrape(ports["extractor"])
        rules, notifier = scrape(ports["rules"]), scrape(ports["notifier"])
        assert total(poller, "newsmon_feed_entries_total", kind="new") == 4
        assert total(poller, "newsmon_feed_polls_total", outcome="ok") >= 1
        assert total(extractor, "newsmon_stories_enriched_total", outcome="full_text") == 4
        assert total(rules, "newsmon_alerts_total") == 3
        assert total(rules, "newsmon_alerts_suppressed_total", reason="near_duplicate") == 3
        assert total(notifier, "newsmon_deliveries_total", outcome="delivered") == 3
        assert total(notifier, "newsmon_end_to_end_seconds_count") == 3
        for samples in (poller, extractor, rules, notifier):
            assert total(samples, "newsmon_dead_letters_total") == 0
        for name, port in ports.items():
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200, name
    codes = {name: process.returncode for name, process in processes.items()}
    assert codes == dict.fromkeys(WORKERS, 0), tails(tmp_path)
