"""One fetch from synchronous test code: the fetcher is async, the tests are not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pipeline.config import HttpSettings
from pipeline.http import PAGE_ACCEPT, Fetched, SafeFetcher, Validators
from pipeline.metrics import Metrics


def fetch_sync(
    settings: HttpSettings,
    url: str,
    *,
    validators: Validators | None = None,
    accept: str = PAGE_ACCEPT,
    max_bytes: int | None = None,
    timeout: float | None = None,
    metrics: Metrics | None = None,
    kind: str = "page",
    wanted: Callable[[str], bool] | None = None,
) -> Fetched:
    async def once() -> Fetched:
        async with SafeFetcher(settings, metrics=metrics, kind=kind) as fetcher:
            return await fetcher.fetch(
                url, validators=validators, accept=accept, max_bytes=max_bytes, timeout=timeout,
                wanted=wanted,
            )  # fmt: skip

    return asyncio.run(once())
