"""The feeds page: each feed's health from the poller's saved state, and OPML import."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.config import DEFAULTS_DIR, Feed, load_feeds
from pipeline.errors import ConfigError
from pipeline.poller.feedlist import append_feeds, plan_import
from pipeline.poller.state import FeedState, SqliteStateStore, StateStore

if TYPE_CHECKING:
    from pipeline.console.app import Console

DAY = 86400.0
MAX_OPML_BYTES = 2_000_000


@dataclass(frozen=True)
class FeedRow:
    feed: Feed
    state: FeedState | None
    stories_day: int
    stories_week: int

    @property
    def status(self) -> str:
        if not self.feed.enabled:
            return "disabled"
        if self.state is None or self.state.last_poll is None:
            return "not polled yet"
        return "failing" if self.state.consecutive_errors else "ok"

    @property
    def share_304(self) -> float | None:
        """The share of successful fetches the server answered 304 Not Modified (a feed
        that never does re-sends its whole document every poll)."""
        if self.state is None or not self.state.fetches:
            return None
        return self.state.fetches_304 / self.state.fetches


def poller_states(console: Console) -> tuple[dict[str, FeedState], str | None]:
    """The feed states where the poller keeps them: the state dir (`newsmon run`, a
    local poller) or the compacted state topic (Kafka pollers)."""
    store: StateStore
    try:
        if console.config.settings.console.source == "kafka":
            from pipeline.poller.worker import KafkaStateStore

            store = KafkaStateStore(console.config.settings.kafka)
        else:
            store = SqliteStateStore(console.config.state_dir)
    except Exception as exc:  # a broker down must not take the page down
        return {}, f"poller state unavailable: {exc}"
    try:
        return store.load(), None
    except Exception as exc:
        return {}, f"poller state unavailable: {exc}"
    finally:
        store.close()


def routes(console: Console) -> list[BaseRoute]:
    path = console.config.feeds_path

    def page(request: Request, status: int = 200, **extra: object) -> Response:
        now = time.time()
        try:
            feeds, problem = load_feeds(path), None
        except ConfigError as exc:
            feeds, problem = [], "; ".join(exc.problems)
        states, state_problem = poller_states(console)
        day = console.store.stories_per_feed(now - DAY)
        week = console.store.stories_per_feed(now - 7 * DAY)
        rows = [
            FeedRow(f, states.get(f.name), day.get(f.name, 0), week.get(f.name, 0)) for f in feeds
        ]
        return console.page(
            request, "feeds.html", status, rows=rows, path=path, now=now,
            problem=problem or state_problem, writable=not _packaged(path), **extra,
        )  # fmt: skip

    async def show(request: Request) -> Response:
        return page(request)

    async def upload(request: Request) -> Response:
        from pipeline.console.app import checked_form

        form = await checked_form(console, request)
        if isinstance(form, Response):
            return form
        upload = form.get("opml")
        if _packaged(path):
            return page(request, 400, errors=[f"{path} is the packaged example: pass --feeds"])
        if not isinstance(upload, UploadFile):
            return page(request, 400, errors=["choose an OPML file to upload"])
        data = await upload.read(MAX_OPML_BYTES + 1)
        if len(data) > MAX_OPML_BYTES:
            return page(request, 413, errors=["the OPML file is larger than 2 MB"])
        try:
            existing = load_feeds(path) if path.exists() else []
            plan = plan_import(existing, data)
            append_feeds(path, plan.added)
        except ConfigError as exc:
            return page(request, 400, errors=exc.problems)
        return page(request, added=plan.added, skipped=plan.skipped)

    return [
        Route("/feeds", show, methods=["GET"], name="feeds"),
        Route("/feeds/import", upload, methods=["POST"], name="feeds_import"),
    ]


def _packaged(path: object) -> bool:
    return str(path).startswith(str(DEFAULTS_DIR))
