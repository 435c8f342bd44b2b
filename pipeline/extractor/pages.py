"""Fetch the pages of a batch concurrently, before the CPU work.

Pages go through the same `SafeFetcher` as feeds (size limit, SSRF guard,
per-host limit, timeouts). All pages of a batch are in flight together, so a
slow page costs its timeout once per batch rather than once per story; a batch
deadline bounds the wait for pages queued behind a slow host's connection limit.
A failed fetch is an outcome, not an error: the story falls back to its summary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from pipeline.config import HttpSettings
from pipeline.errors import PipelineError
from pipeline.extractor.enrich import FetchedPage, PageFailed, PageOutcome, is_html_type
from pipeline.http import PAGE_ACCEPT, SafeFetcher
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)

# Pages waiting behind a host's connection limit get this many timeouts in all.
BATCH_DEADLINE_TIMEOUTS = 2.0


async def fetch_pages(
    fetcher: SafeFetcher, urls: Sequence[str], *, max_bytes: int, deadline: float
) -> list[PageOutcome]:
    """One outcome per URL, in order, all fetched at once; for callers already in an event loop.

    Pages not done after `deadline` seconds (queued behind a slow host) count as timed out.
    """
    tasks = [asyncio.ensure_future(fetch_page(fetcher, url, max_bytes=max_bytes)) for url in urls]
    if not tasks:
        return []
    _done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [_outcome(task) for task in tasks]


async def fetch_page(fetcher: SafeFetcher, url: str, *, max_bytes: int) -> PageOutcome:
    """The page, or why there is none: a failed fetch is an outcome, not an error."""
    try:
        fetched = await fetcher.fetch(
            url, accept=PAGE_ACCEPT, max_bytes=max_bytes, wanted=is_html_type
        )
    except PipelineError as exc:
        log.debug(
            "page fetch failed", extra={"host": _host(url), "reason": exc.reason, "error": str(exc)}
        )
        reason = "not_html" if exc.reason == "unwanted_type" else exc.reason
        return PageFailed(reason, str(exc))
    return FetchedPage(fetched.body, fetched.headers.get("content-type", ""), fetched.url)


class PageFetcher:
    """`fetch_pages` for synchronous callers: a SafeFetcher on an event loop of its own that
    lives as long as the worker, so connections and per-host limits outlast a batch."""

    def __init__(
        self, settings: HttpSettings, *, max_bytes: int, metrics: Metrics | None = None
    ) -> None:
        self._max_bytes = max_bytes
        self._deadline = settings.timeout_seconds * BATCH_DEADLINE_TIMEOUTS
        self._runner = asyncio.Runner()
        self._fetcher = self._runner.run(_open(settings, max_bytes, metrics))

    def fetch_all(self, urls: Sequence[str]) -> list[PageOutcome]:
        """One outcome per URL, in order; never raises for a page that cannot be had."""
        pages = fetch_pages(self._fetcher, urls, max_bytes=self._max_bytes, deadline=self._deadline)
        return self._runner.run(pages)

    def close(self) -> None:
        try:
            self._runner.run(self._fetcher.aclose())
        finally:
            self._runner.close()

    def __enter__(self) -> PageFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _open(settings: HttpSettings, max_bytes: int, metrics: Metrics | None) -> SafeFetcher:
    """Made inside the loop that will use it."""
    return SafeFetcher(settings, max_bytes=max_bytes, metrics=metrics, kind="page")


def _outcome(task: asyncio.Future[PageOutcome]) -> PageOutcome:
    if task.cancelled():
        return PageFailed("timeout", "still queued or fetching at the batch deadline")
    error = task.exception()
    if error is not None:
        # Not a PipelineError: a bug or an unexpected library error; the story still goes on.
        log.error("page fetch crashed", extra={"reason": "crash", "error": repr(error)})
        return PageFailed("fetch_error", f"{type(error).__name__}: {error}")
    return task.result()


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"
