"""Who may use the console, and the headers every page carries.

- A login is required unless the console listens on loopback only with no password or
  token set; bound elsewhere without either, it refuses to start.
- Sessions are signed cookies (Starlette's `SessionMiddleware`, itsdangerous), HttpOnly,
  SameSite=Strict; the session also holds the CSRF token every form posts back.
- Failed logins are counted per client address; past `login_attempts` in
  `login_window_seconds` the login answers 429 until the window moves on.
- Every response: a CSP with scripts from this origin only (no inline script, no eval
  needed by the pages), no framing, no MIME sniffing, no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from pipeline.config import ConsoleSettings
from pipeline.errors import ConfigError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PUBLIC_PATHS = ("/login", "/static/", "/healthz")


def split_bind(bind: str) -> tuple[str, int]:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080); '[::1]:8080' works too."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError([f"console.bind: expected HOST:PORT, got {bind!r}"])
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """The credentials the console accepts (none: open, loopback only)."""

    password: str | None
    token: str | None

    @property
    def required(self) -> bool:
        return bool(self.password or self.token)

    def accepts(self, given: str) -> bool:
        """Constant-time against each credential set."""
        candidates = [c for c in (self.password, self.token) if c]
        return any(hmac.compare_digest(given.encode(), c.encode()) for c in candidates)

    def bearer_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        return bool(
            self.token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(value.encode(), self.token.encode())
        )


def access_for(settings: ConsoleSettings, host: str) -> Access:
    """The console's access rule for `host`; a non-loopback bind without credentials is an error."""
    password = settings.password.get_secret_value() if settings.password else None
    token = settings.token.get_secret_value() if settings.token else None
    access = Access(password or None, token or None)
    if not access.required and not is_loopback(host):
        raise ConfigError([
            f"console.bind: {host} is not loopback: set console.password or console.token "
            "(or NEWSMON_CONSOLE__PASSWORD_FILE) so the console asks for a login"
        ])  # fmt: skip
    return access


def session_secret(settings: ConsoleSettings) -> str:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, submitted: object) -> bool:
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and hmac.compare_digest(expected.encode(), submitted.encode())
    )


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PATHS)


class LoginThrottle:
    """Failed logins per client within a sliding window."""

    def __init__(
        self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, client: str) -> bool:
        failures = self._failures[client]
        cutoff = self.clock() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
            return False
        return len(failures) >= self.attempts

    def failed(self, client: str) -> None:
        self._failures[client].append(self.clock())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
