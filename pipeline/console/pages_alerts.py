"""The alerts page (filters, pages, live refresh) and the story page (why it fired or not)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.config import load_rules
from pipeline.console.highlight import annotate, annotate_paragraphs, marked_snippet, story_spans
from pipeline.errors import ConfigError
from pipeline.history.store import AlertFilter, Cursor
from pipeline.models import EnrichedStory
from pipeline.rules.compile import compile_rules
from pipeline.rules.match import Verdict, explain_story

if TYPE_CHECKING:
    from pipeline.console.app import Console

SEVERITIES = ("critical", "high", "medium", "low", "info")
FILTER_KEYS = ("rule", "severity", "source", "from", "to", "q")
DAY = 86400.0


def parse_filter(params: QueryParams) -> tuple[AlertFilter, list[str]]:
    """The filter the query asks for, and what in it could not be read."""
    problems = []
    since = until = None
    for key in ("from", "to"):
        value = params.get(key, "").strip()
        if not value:
            continue
        try:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            problems.append(f"{key}: expected a date like 2026-05-31, got {value!r}")
            continue
        if key == "from":
            since = day
        else:
            until = day + DAY  # the whole of the 'to' day
    where = AlertFilter(
        rule=params.get("rule", "").strip(),
        severity=params.get("severity", "").strip(),
        source=params.get("source", "").strip(),
        since=since,
        until=until,
        text=params.get("q", "").strip()[:200],
    )
    return where, problems


def filter_query(params: QueryParams, **extra: str) -> str:
    kept = {k: params[k] for k in FILTER_KEYS if params.get(k)}
    return urlencode({**kept, **extra})


def safe_link(url: str) -> str | None:
    """Only http(s) links become hrefs; anything else (javascript:, data:) stays text."""
    return url if urlsplit(url).scheme in ("http", "https") else None


def routes(console: Console) -> list[BaseRoute]:
    def table(request: Request) -> dict[str, Any]:
        params = request.query_params
        where, problems = parse_filter(params)
        before = Cursor.parse(params.get("before", ""))
        started = time.perf_counter()
        page = console.store.alerts(where, before)
        elapsed = time.perf_counter() - started
        older = filter_query(params, before=page.older.token()) if page.older else None
        live = before is None
        return {
            "rows": page.rows, "older": older, "problems": problems, "live": live,
            "elapsed_ms": elapsed * 1000, "snippet": marked_snippet,
            "refresh": "/alerts/rows?" + filter_query(params),
            "first_page": "/alerts?" + filter_query(params),
        }  # fmt: skip

    async def alerts(request: Request) -> Response:
        params = request.query_params
        context = table(request)
        return console.page(
            request, "alerts.html", **context, params=params, severities=SEVERITIES,
            rules=console.store.choices("rule_id"), sources=console.store.choices("source"),
        )  # fmt: skip

    async def rows(request: Request) -> Response:
        return console.page(request, "alert_table.html", **table(request))

    async def story(request: Request) -> Response:
        story_id = request.path_params["story_id"]
        story = console.store.story(story_id)
        raised = console.store.alerts_for_story(story_id)
        if story is None and not raised:
            return console.page(request, "error.html", 404, message="No such story in the history.")
        if story is None:
            return console.page(
                request, "story.html", story=None, raised=raised, verdicts=[], fields={},
                rules_problem=None, link=None, labels=[],
            )  # fmt: skip
        verdicts, rules_problem = _verdicts(console, story)
        spans = story_spans(story, verdicts)
        fields = {f: annotate(getattr(story, f), spans[f]) for f in ("title", "summary")}
        return console.page(
            request, "story.html", story=story, raised=raised, verdicts=verdicts,
            fields=fields, paragraphs=annotate_paragraphs(story.text, spans["text"]),
            rules_problem=rules_problem, link=safe_link(story.url),
            labels=sorted({e.label for e in story.entities}),
        )  # fmt: skip

    return [
        Route("/alerts", alerts, name="alerts"),
        Route("/alerts/rows", rows, name="alert_rows"),
        Route("/stories/{story_id}", story, name="story"),
    ]


def _verdicts(console: Console, story: EnrichedStory) -> tuple[list[Verdict], str | None]:
    """The current rules' verdicts on the story; a rules file that does not load is said so."""
    try:
        compiled = compile_rules(load_rules(console.config.rules_path))
    except ConfigError as exc:
        return [], "; ".join(exc.problems)
    policy = console.config.settings.rules.unread_entities
    return explain_story(story, compiled, unread_entities=policy), None
