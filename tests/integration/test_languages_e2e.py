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

import html
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from languages import RULES_FILE, page, stories
from notifier_receiver import Receiver
from test_pipeline_kafka import worker_env
from test_run_local import SECRET, child_env, verified_alerts

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


class WorldPress:
    """/feed.xml (no <language>) and the three pages, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/feed.xml":
                    self._send(200, "application/rss+xml", site.feed())
                elif path in PAGES:
                    language, declared = PAGES[path]
                    self._send(200, "text/html; charset=utf-8", page(language, declared=declared))
                else:
                    self._send(404, "text/plain", "not found")

            def _send(self, status: int, content_type: str, body: str) -> None:
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def feed(self) -> str:
        published = format_datetime(datetime(2023, 5, 30, 10, 0, tzinfo=UTC))
        items = "".join(
            f"<item><title>{html.escape(stories()[lang]['title'])}</title>"
            f"<link>{self.base}{path}</link><pubDate>{published}</pubDate>"
            f"<description>{html.escape(stories()[lang]['standfirst'])}</description></item>"
            for path, (lang, _) in PAGES.items()
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>World press</title><link>{self.base}/</link><description>e2e</description>"
            f"{items}</channel></rss>"
        )

    def write_feeds_file(self, folder: Path) -> Path:
        path = folder / "feeds.yaml"
        path.write_text(
            f"feeds:\n  - url: {self.base}/feed.xml\n    name: world\n", encoding="utf-8"
        )
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world_press() -> Iterator[WorldPress]:
    site = WorldPress()
    yield site
    site.close()


def delivered(receiver: Receiver, base: str) -> set[tuple[str, str]]:
    return {
        (str(a["rule_id"]), str(a["story"]["url"]).removeprefix(base))  # type: ignore[index]
        for a in verified_alerts(receiver)
    }


def test_newsmon_run_alerts_on_chinese_russian_and_french_stories(
    world_press: WorldPress, tmp_path: Path
) -> None:
    receiver = Receiver()
    command = [
        sys.executable, "-m", "pipeline.cli", "run", "--once", "--allow-private-networks",
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(RULES_FILE),
        "--feeds", str(world_press.write_feeds_file(tmp_path)), "--state-dir", str(tmp_path / "state"),
        "--webhook", receiver.url(), "--webhook-secret", SECRET,
    ]  # fmt: skip
    done = subprocess.run(
        command, env=child_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    receiver.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert delivered(receiver, world_press.base) == EXPECTED
    assert len(receiver.requests) == len(EXPECTED)
    assert "**秦刚**" in done.stdout and "**Цинь Ган**" in done.stdout  # the original text


def test_kafka_workers_alert_on_chinese_russian_and_french_stories(
    kafka_settings: KafkaSettings, world_press: WorldPress, tmp_path: Path
) -> None:
    receiver = Receiver()
    feeds = world_press.write_feeds_file(tmp_path)
    env = worker_env(kafka_settings)
    env["NEWSMON_EXTRACTION__WORKERS"] = "1"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in WORKERS}
    processes = {
        name: subprocess.Popen(
            _worker(name, feeds, tmp_path / "state", receiver.url()),
            env=env,
            cwd=ROOT,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
        )
        for name in WORKERS
    }
    try:
        deadline = time.monotonic() + 240
        while len(receiver.requests) < len(EXPECTED) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes.values()), "a worker died"
            time.sleep(0.5)
        time.sleep(5)  # a duplicate or a false alarm would arrive by now
        assert delivered(receiver, world_press.base) == EXPECTED
        assert len(receiver.requests) == len(EXPECTED)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=60)
        for log in logs.values():
            log.close()
        receiver.close()


WORKERS = ("poller", "extractor", "rules", "notifier")


def _worker(name: str, feeds: Path, state: Path, hook: str) -> list[str]:
    command = [sys.executable, "-m", "pipeline.cli", name, "--feeds", str(feeds)]
    if name != "extractor":
        command += ["--state-dir", str(state / name)]
    if name == "rules":
        command += ["--rules", str(RULES_FILE)]
    if name == "notifier":
        command += ["--webhook", hook, "--webhook-secret", SECRET]
    return command
