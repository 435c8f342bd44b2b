"""The console as an ASGI app: the pages, the login, and what wraps every request.

Pages are server-rendered (Jinja2, autoescape on); htmx, served from this package,
refreshes the alert list and posts the rule editor without a reload, and every page
works without JavaScript too (a reload shows new alerts, the editor's buttons post
the form).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.config import Config
from pipeline.console import security
from pipeline.console.security import Access, LoginThrottle, csrf_ok, csrf_token
from pipeline.history.store import HistoryStore
from pipeline.metrics import Metrics

HERE = Path(__file__).resolve().parent
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Console:
    """What the pages share: the config, the history store, metrics and the access rule."""

    config: Config
    store: HistoryStore
    metrics: Metrics
    access: Access
    throttle: LoginThrottle
    templates: Environment
    healthy: Callable[[], bool] = lambda: True

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        template = self.templates.get_template(name)
        body = template.render(
            request=request, csrf=csrf_token(request), login=self.access.required, **context
        )
        return HTMLResponse(body, status_code=status)


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))


async def checked_form(console: Console, request: Request) -> dict[str, Any] | Response:
    """The posted form if its CSRF token is the session's; else the 403 to answer."""
    form = await request.form()
    values: dict[str, Any] = dict(form)
    if not csrf_ok(request, values.get("csrf")):
        return console.page(request, "error.html", 403, message="The form expired: reload it.")
    return values


# -- login ------------------------------------------------------------------------------


def login_routes(console: Console) -> list[BaseRoute]:
    async def show(request: Request) -> Response:
        return console.page(request, "login.html", next=_safe_next(request.query_params))

    async def submit(request: Request) -> Response:
        form = await checked_form(console, request)
        if isinstance(form, Response):
            return form
        client = request.client.host if request.client else "?"
        target = _safe_next(form)
        if console.throttle.blocked(client):
            console.metrics.console_logins.labels("throttled").inc()
            message = "Too many failed logins: wait a few minutes."
            return console.page(request, "login.html", 429, error=message, next=target)
        if not console.access.accepts(str(form.get("password", ""))):
            console.throttle.failed(client)
            console.metrics.console_logins.labels("failed").inc()
            return console.page(request, "login.html", 401, error="Wrong password.", next=target)
        console.throttle.succeeded(client)
        console.metrics.console_logins.labels("ok").inc()
        request.session.clear()
        request.session["user"] = "console"
        csrf_token(request)
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        form = await checked_form(console, request)
        if isinstance(form, Response):
            return form
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    return [
        Route("/login", show, methods=["GET"], name="login"),
        Route("/login", submit, methods=["POST"], name="login_post"),
        Route("/logout", logout, methods=["POST"], name="logout"),
    ]


def _safe_next(values: Any) -> str:
    """Only a path of this site (never '//host' or a scheme) after login."""
    target = str(values.get("next", "") or "/alerts")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/alerts"
    return target


# -- what wraps every request -------------------------------------------------------------


class Guard(BaseHTTPMiddleware):
    """Login gate, secure headers, and the request metrics."""

    def __init__(self, app: Any, console: Console) -> None:
        super().__init__(app)
        self.console = console

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await self._allowed(request, call_next)
        for name, value in security.SECURE_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        page = _page_name(request)
        metrics = self.console.metrics
        metrics.console_requests.labels(page, f"{response.status_code // 100}xx").inc()
        metrics.console_request_seconds.labels(page).observe(time.perf_counter() - started)
        return response

    async def _allowed(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        access = self.console.access
        if not access.required or security.is_public(request.url.path):
            return await call_next(request)
        bearer = request.headers.get("authorization", "")
        if request.session.get("user") or access.bearer_ok(bearer):
            return await call_next(request)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"/login?next={_quote(target)}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


PAGES = ("alerts", "story", "rules", "feeds", "login", "static", "healthz")


def _page_name(request: Request) -> str:
    """A bounded label: the first path segment if it is a page, else 'other'."""
    first = request.url.path.strip("/").split("/", 1)[0]
    if first in ("stories",):
        return "story"
    return first if first in PAGES else "other"


def build_app(console: Console, session_secret: str) -> Starlette:
    from pipeline.console import pages_alerts, pages_feeds, pages_rules

    async def healthz(request: Request) -> Response:
        ok = console.healthy()
        return PlainTextResponse("ok\n" if ok else "unhealthy\n", status_code=200 if ok else 503)

    async def home(request: Request) -> Response:
        return RedirectResponse("/alerts", status_code=303)

    settings = console.config.settings.console
    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/healthz", healthz),
        *login_routes(console),
        *pages_alerts.routes(console),
        *pages_rules.routes(console),
        *pages_feeds.routes(console),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware, secret_key=session_secret, session_cookie="newsmon_console",
            max_age=int(settings.session_hours * 3600), same_site="strict",
            https_only=settings.secure_cookies,
        ),
        Middleware(Guard, console=console),
    ]  # fmt: skip
    return Starlette(routes=routes, middleware=middleware)
