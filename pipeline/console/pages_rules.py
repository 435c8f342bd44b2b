"""The rules page (the file as a table, last fired, alerts per day) and the one-rule editor:
check, test over the history, save."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.config import Rule, load_rules
from pipeline.console.highlight import marked_snippet
from pipeline.console.rule_edit import (
    apply_edit,
    check_rules_text,
    file_version,
    rule_source,
    save_rules,
)
from pipeline.console.trial import try_rule
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.console.app import Console

log = logging.getLogger(__name__)

SPARK_DAYS = 14
_READ_ONLY_HINT = (
    " (a read-only mount, such as a ConfigMap on Kubernetes, is changed where it comes from;"
    " check and test work here)"
)
DAY = 86400.0
NEW_RULE = "id: new-rule\nname: New rule\nterms: [example term]\nseverity: medium\n"


@dataclass(frozen=True)
class RuleRow:
    rule: Rule
    last_fired: float | None
    per_day: list[int]
    spark: Markup


def sparkline(counts: list[int]) -> Markup:
    """Alerts per day as an inline SVG of bars (no script, no inline style: CSP-safe)."""
    top = max(counts) or 1
    bars = []
    for i, count in enumerate(counts):
        height = 0 if count == 0 else max(1.0, 16 * count / top)
        bars.append(f'<rect x="{i * 4}" y="{16 - height:.1f}" width="3" height="{height:.1f}"/>')
    width = len(counts) * 4
    label = f"alerts per day over {len(counts)} days: {', '.join(map(str, counts))}"
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} 16" width="{width * 2}" height="24" '
        f'role="img" aria-label="{label}">{"".join(bars)}</svg>'
    )


def rule_rows(console: Console, rules: list[Rule], now: float) -> list[RuleRow]:
    activity = console.store.rule_activity(now - SPARK_DAYS * DAY, SPARK_DAYS)
    rows = []
    for rule in rules:
        last, counts = activity.get(rule.id, (None, [0] * SPARK_DAYS))
        rows.append(RuleRow(rule, last, counts, sparkline(counts)))
    return rows


def routes(console: Console) -> list[BaseRoute]:
    path = console.config.rules_path

    def current_rules() -> tuple[list[Rule], str | None]:
        try:
            return load_rules(path), None
        except ConfigError as exc:
            return [], "; ".join(exc.problems)

    async def table(request: Request) -> Response:
        rules, problem = current_rules()
        return console.page(
            request, "rules.html", rows=rule_rows(console, rules, time.time()),
            problem=problem, path=path,
        )  # fmt: skip

    def editor(request: Request, rule_id: str | None, source: str, **extra: Any) -> Response:
        text = path.read_text(encoding="utf-8")
        return console.page(
            request, "rule_edit.html", rule_id=rule_id, source=source,
            version=file_version(text), path=path, **extra,
        )  # fmt: skip

    async def show(request: Request) -> Response:
        rule_id = request.path_params.get("rule_id")
        text = path.read_text(encoding="utf-8")
        source = rule_source(text, rule_id) if rule_id else NEW_RULE
        if rule_id and not source:
            return console.page(request, "error.html", 404, message="No such rule in the file.")
        return editor(request, rule_id, source)

    async def submit(request: Request) -> Response:
        from pipeline.console.app import checked_form

        form = await checked_form(console, request)
        if isinstance(form, Response):
            return form
        rule_id = request.path_params.get("rule_id")
        source = str(form.get("source", ""))
        action = str(form.get("action", "check"))
        result = _act(console, rule_id, source, action, str(form.get("version", "")))
        if request.headers.get("hx-request"):
            return console.page(request, "rule_result.html", **result)
        return editor(request, rule_id, source, **result)

    return [
        Route("/rules", table, name="rules"),
        Route("/rules/new", show, methods=["GET"], name="rule_new"),
        Route("/rules/new", submit, methods=["POST"], name="rule_new_post"),
        Route("/rules/{rule_id}", show, methods=["GET"], name="rule"),
        Route("/rules/{rule_id}", submit, methods=["POST"], name="rule_post"),
    ]


def _act(
    console: Console, rule_id: str | None, source: str, action: str, version: str
) -> dict[str, Any]:
    """Check, test or save the edited rule; what the result panel shows."""
    path = console.config.rules_path
    settings = console.config.settings
    text = path.read_text(encoding="utf-8")
    edit = apply_edit(text, rule_id, source, path, settings)
    result: dict[str, Any] = {
        "action": action, "problems": edit.problems, "snippet": marked_snippet,
    }  # fmt: skip
    if edit.problems or edit.rule is None:
        if action == "save":
            console.metrics.console_rule_saves.labels("invalid").inc()
        return result
    if action == "test":
        current = next((r for r in load_rules(path) if r.id == rule_id), None) if rule_id else None
        stories = console.store.stories(limit=settings.console.test_max_stories)
        result["trial"] = try_rule(edit.rule, current, stories, settings.rules.snippet_chars)
    elif action == "save":
        if version != file_version(text):
            result["problems"] = [
                f"{path} changed since this editor opened it: reload the page and edit again"
            ]
            console.metrics.console_rule_saves.labels("invalid").inc()
            return result
        problems = check_rules_text(edit.text, path, settings)
        if problems:
            result["problems"] = problems
            return result
        try:
            result["previous"] = save_rules(path, edit.text)
        except OSError as exc:
            result["problems"] = [f"{path}: cannot save here: {exc.strerror}{_READ_ONLY_HINT}"]
            console.metrics.console_rule_saves.labels("error").inc()
            log.error("rule not saved", extra={"rule": edit.rule.id, "reason": exc.strerror})
            return result
        result["saved"] = edit.rule.id
        result["version"] = file_version(edit.text)
        console.metrics.console_rule_saves.labels("ok").inc()
    result["checked"] = True
    return result
