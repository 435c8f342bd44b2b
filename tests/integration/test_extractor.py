"""The extractor on a real broker, with pages served for real on 127.0.0.1.

Raw stories in, enriched stories out; a slow page times out into the summary
fallback, a 50 MB page is refused, a PDF link falls back, and a poison record
goes to the dead-letter topic while the rest of its partition goes on.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from seed import seed_page
from shipped import TAXONOMY

from pipeline.config import (
    ExtractionSettings,
    HttpSettings,
    KafkaSettings,
    MetricsSettings,
    NlpSettings,
    Settings,
)
from pipeline.corridor.kafka import clients
from pipeline.corridor.kafka.clients import Producer
from pipeline.corridor.records import Message, Output
from pipeline.extractor.enrich import FetchedPage, PageFailed
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.worker import run_extractor
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, RawStory, decode, story_id_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SLOW_SECONDS = 6.0
TIMEOUT_SECONDS = 2.0  # generous: the test machine's cores are shared
HUGE_BYTES = 50 * 1024 * 1024
NOW = datetime(2023, 5, 30, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    delay: float = 0.0
    declare_length: bool = True
    repeat: int = 1


class PageHandler(BaseHTTPRequestHandler):
    pages: dict[str, Page] = {}
    protocol_version = "HTTP/1.0"  # close-delimited bodies, so a page need not declare its length

    def do_GET(self) -> None:
        page = self.pages.get(self.path)
        if page is None:
            page = Page(b"<html><body>not found</body></html>", status=404)
        time.sleep(page.delay)
        # The client may give up (timeout, size limit): that is what the tests want.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(page)

    def _send(self, page: Page) -> None:
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        if page.declare_length:
            self.send_header("Content-Length", str(len(page.body) * page.repeat))
        self.end_headers()
        for _ in range(page.repeat):
            self.wfile.write(page.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def site(shared_dir: Path) -> Iterator[str]:
    chunk = b"<p>" + b"filler text " * 5000 + b"</p>\n"
    pages = {
        "/seed": Page(seed_page(shared_dir).encode()),
        "/slow": Page(seed_page(shared_dir).encode(), delay=SLOW_SECONDS),
        "/huge": Page(chunk, declare_length=False, repeat=HUGE_BYTES // len(chunk) + 1),
        "/huge-declared": Page(chunk, repeat=HUGE_BYTES // len(chunk) + 1),
        "/report.pdf": Page(
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "application/pdf"
        ),
        "/paywall": Page(b"<html><body><p>Subscribe to keep reading.</p></body></html>"),
    }
    handler = type("SiteHandler", (PageHandler,), {"pages": pages})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def http_settings(**changes: object) -> HttpSettings:
    values: dict[str, object] = {
        "allow_private_networks": True,
        "timeout_seconds": TIMEOUT_SECONDS,
        "connect_timeout_seconds": TIMEOUT_SECONDS,
        **changes,
    }
    return HttpSettings.model_validate(values)


# --- fetching pages ----------------------------------------------------------------------


def test_pages_of_a_batch_are_fetched_together(site: str) -> None:
    urls = [f"{site}/slow"] * 3 + [f"{site}/seed", f"{site}/report.pdf", f"{site}/nope"]
    started = time.monotonic()
    with PageFetcher(http_settings(max_per_host=8), max_bytes=5_000_000) as fetcher:
        outcomes = fetcher.fetch_all(urls)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5 * TIMEOUT_SECONDS, "three slow pages cost one timeout, not three"
    assert [o.reason for o in outcomes[:3] if isinstance(o, PageFailed)] == ["timeout"] * 3
    seed, pdf, missing = outcomes[3:]
    assert isinstance(seed, FetchedPage) and isinstance(seed.body, bytes)
    assert b"Qin Gang" in seed.body
    assert isinstance(pdf, PageFailed) and pdf.reason == "not_html"  # refused before its body
    assert isinstance(missing, PageFailed) and missing.reason == "http_4xx"


@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
def test_a_50_mb_page_is_refused(site: str, path: str) -> None:
    with PageFetcher(http_settings(), max_bytes=5_000_000) as fetcher:
        [outcome] = fetcher.fetch_all([site + path])
    assert isinstance(outcome, PageFailed) and outcome.reason == "too_large"


def test_pages_queued_behind_a_slow_host_stop_at_the_batch_deadline(site: str) -> None:
    started = time.monotonic()
    with PageFetcher(http_settings(max_per_host=1), max_bytes=5_000_000) as fetcher:
        outcomes = fetcher.fetch_all([f"{site}/slow"] * 4)
    assert time.monotonic() - started < 3.5 * TIMEOUT_SECONDS  # the deadline is two timeouts
    assert {o.reason for o in outcomes if isinstance(o, PageFailed)} == {"timeout"}
    assert len(outcomes) == 4


def test_private_addresses_are_refused_unless_allowed(site: str) -> None:
    with PageFetcher(http_settings(allow_private_networks=False), max_bytes=5_000_000) as fetcher:
        [outcome] = fetcher.fetch_all([f"{site}/seed"])
    assert isinstance(outcome, PageFailed) and outcome.reason == "refused"


# --- the worker on a broker ----------------------------------------------------------------------


def raw(url: str, title: str, summary: str = "Tesla's Elon Musk met Qin Gang.") -> RawStory:
    return RawStory(
        id=story_id_for(url), url=url, title=title, summary=summary, published=NOW,
        first_seen=NOW, feed="ledger", tags=["World"],
    )  # fmt: skip


def wait_for_messages(
    settings: KafkaSettings, topic: str, count: int, timeout: float = 60.0
) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        messages = list(clients.read_to_end(settings, topic))
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def test_raw_stories_in_enriched_stories_out(site: str, kafka_settings: KafkaSettings) -> None:
    stories = {
        "seed": raw(f"{site}/seed", "Elon Musk meets Chinese foreign minister"),
        "slow": raw(f"{site}/slow", "Slow page"),
        "huge": raw(f"{site}/huge", "Huge page"),
        "pdf": raw(f"{site}/report.pdf", "A PDF report"),
        "paywall": raw(f"{site}/paywall", "Behind a paywall"),
        "missing": raw(f"{site}/missing", "Gone"),
    }
    topics = kafka_settings.topics
    records = [Output(topics.raw, s.id, s.to_bytes()) for s in stories.values()]
    records.insert(2, Output(topics.raw, b"poison", b"{not json"))
    records.insert(4, Output(topics.raw, b"old", b'{"schema_version": 99, "id": "x"}'))
    producer = Producer(kafka_settings)
    producer.publish(records)
    producer.close()

    settings = Settings(
        kafka=kafka_settings,
        http=http_settings(),
        extraction=ExtractionSettings(),
        nlp=NlpSettings(topics_file=ROOT / "configs" / "topics.yaml", batch_size=8),
        metrics=MetricsSettings(enabled=False),
    )
    metrics, stop = Metrics(), threading.Event()
    worker = threading.Thread(target=run_extractor, args=(settings, TAXONOMY, metrics, stop))
    worker.start()
    try:
        enriched = [m.value for m in wait_for_messages(kafka_settings, topics.enriched, 6)]
        dead_letters = list(wait_for_messages(kafka_settings, topics.dead_letter, 2))
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()

    by_url = {s.url: s for s in (decode(EnrichedStory, v) for v in enriched)}
    assert len(by_url) == len(stories) == len(enriched)
    outcome = {name: by_url[s.url] for name, s in stories.items()}
    assert (outcome["seed"].text_source, outcome["seed"].fallback_reason) == ("full_text", None)
    assert {"Tesla", "Elon Musk", "Qin Gang"} <= {e.text for e in outcome["seed"].entities}
    assert "Please enter your comment" not in outcome["seed"].text
    reasons = {name: outcome[name].fallback_reason for name in ("slow", "huge", "pdf", "missing")}
    assert reasons == {
        "slow": "timeout",
        "huge": "too_large",
        "pdf": "not_html",
        "missing": "http_4xx",
    }
    assert outcome["paywall"].text_source == "summary_fallback"
    assert outcome["pdf"].text == "A PDF report\n\nTesla's Elon Musk met Qin Gang."
    assert "Elon Musk" in {e.text for e in outcome["pdf"].entities}

    assert sorted(m.key or b"" for m in dead_letters) == [b"old", b"poison"]
    poison = next(m for m in dead_letters if m.key == b"poison")
    assert poison.value == b"{not json"
    assert poison.header("newsmon.error.reason") == b"decode"
    assert poison.header("newsmon.error.stage") == b"extractor"
    sample = metrics.registry.get_sample_value
    assert sample("newsmon_stories_enriched_total", {"outcome": "full_text"}) == 1
    assert sample("newsmon_stories_enriched_total", {"outcome": "summary_fallback"}) == 5
    assert sample("newsmon_stories_enriched_total", {"outcome": "failed"}) == 2
    assert sample("newsmon_fetch_seconds_count", {"kind": "page"}) == 6
    # enriched in the pool's processes, counted in the worker's registry
    assert sample("newsmon_ner_seconds_count", {}) == 6
    extractions = sample("newsmon_extraction_seconds_count", {})
    assert extractions is not None and extractions >= 1


def test_newsmon_enrich_reads_json_lines(shared_dir: Path) -> None:
    lines = [
        json.dumps({"url": "https://ledger.example/a", "html": seed_page(shared_dir)}),
        "not json",
        json.dumps({"url": "https://ledger.example/b", "html": "", "title": "Qin Gang speaks"}),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "enrich"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["url"] for o in out] == ["https://ledger.example/a", "https://ledger.example/b"]
    assert [o["text_source"] for o in out] == ["full_text", "summary_fallback"]
    assert "newsmon enrich: line 2: not JSON" in result.stderr
