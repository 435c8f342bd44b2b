"""Talking to destinations: signed JSON webhooks over httpx, chat through Apprise.

An adapter sends one alert once. It raises `DeliveryRetryable` when trying again
may help (5xx, 408/409/425/429, timeouts, refused connections, Apprise reporting
failure) and `DeliveryError` when it will not (any other 4xx, a redirect); the
dispatcher decides what happens next. Webhook URLs are the operator's own
configuration, so they do not go through the SSRF guard of `pipeline.http`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import apprise
import httpx

from pipeline.config import Destination
from pipeline.errors import ConfigError, DeliveryError, DeliveryRetryable
from pipeline.models import Alert, Severity
from pipeline.notifier.format import chat_message, webhook_body
from pipeline.notifier.retry import parse_retry_after
from pipeline.notifier.signing import signature_headers, signing_key

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
APPRISE_TYPES: Mapping[Severity, str] = {
    "info": apprise.NotifyType.INFO,
    "low": apprise.NotifyType.INFO,
    "medium": apprise.NotifyType.INFO,
    "high": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
}


class Adapter(Protocol):
    def deliver(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


def check_status(status: int, retry_after: str | None, now: float) -> None:
    """Raise the delivery error an HTTP status stands for; return quietly on 2xx."""
    if 200 <= status < 300:
        return
    if status >= 500 or status in RETRYABLE_4XX:
        reason = "throttled" if status == 429 else "server_error" if status >= 500 else "http_retry"
        wait = parse_retry_after(retry_after, now)
        raise DeliveryRetryable(f"HTTP {status}", reason=reason, retry_after=wait)
    if 300 <= status < 400:
        raise DeliveryError(f"HTTP {status}: webhook URLs must not redirect", reason="redirect")
    raise DeliveryError(f"HTTP {status}: the receiver refused the alert", reason="rejected")


class WebhookAdapter:
    """POSTs the alert JSON, signed per Standard Webhooks with the alert id as `webhook-id`.

    Each attempt carries a fresh `webhook-timestamp` (receivers reject old ones)
    and the same `webhook-id`, which is what receivers deduplicate on.
    """

    def __init__(
        self, url: str, key: bytes, client: httpx.Client, clock: Callable[[], float]
    ) -> None:
        self._url = url
        self._key = key
        self._client = client
        self._clock = clock

    def deliver(self, alert: Alert) -> None:
        body = webhook_body(alert)
        now = self._clock()
        headers = signature_headers(self._key, alert.alert_id, int(now), body)
        headers["content-type"] = "application/json"
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryRetryable(f"timed out: {type(exc).__name__}", reason="timeout") from exc
        except httpx.TransportError as exc:
            raise DeliveryRetryable(f"unreachable: {exc}", reason="unreachable") from exc
        check_status(response.status_code, response.headers.get("retry-after"), self._clock())

    def close(self) -> None:
        """The HTTP client is shared; `close_adapters` closes it once."""


class AppriseAdapter:
    """One Apprise object per destination; Markdown body, severity as the notify type.

    Apprise reports success as a boolean only, so any failure is retryable.
    Calls are serialised: Apprise's own per-service throttle keeps state.
    """

    def __init__(self, destination_id: str, url: str, timeout: float, asset: apprise.AppriseAsset):
        self._apprise = apprise.Apprise(asset=asset)
        if not self._apprise.add(with_socket_timeouts(url, timeout)):
            scheme = urlsplit(url).scheme or "?"
            raise ConfigError(
                [f"notifier destination {destination_id!r}: Apprise cannot use this "
                 f"{scheme}:// URL (unknown service or missing tokens)"]
            )  # fmt: skip
        self._lock = threading.Lock()

    def deliver(self, alert: Alert) -> None:
        message = chat_message(alert)
        with self._lock:
            result = self._apprise.notify(
                body=message.body,
                title=message.title,
                body_format=apprise.NotifyFormat.MARKDOWN,
                notify_type=APPRISE_TYPES[alert.severity],
            )
        if not result:
            status = getattr(getattr(result, "status", None), "name", "failed")
            raise DeliveryRetryable(f"Apprise reported {status}", reason="apprise_failed")

    def close(self) -> None:
        self._apprise.clear()


def with_socket_timeouts(url: str, timeout: float) -> str:
    """Add Apprise's connect/read timeouts (`cto`, `rto`) unless the URL sets its own."""
    query = parse_qs(urlsplit(url).query)
    extra = [f"{name}={timeout:g}" for name in ("cto", "rto") if name not in query]
    if not extra:
        return url
    separator = "&" if "?" in url else "?"
    return url + separator + "&".join(extra)


def build_adapters(
    destinations: Sequence[Destination],
    timeout: float,
    user_agent: str,
    clock: Callable[[], float],
) -> tuple[dict[str, Adapter], httpx.Client]:
    """One adapter per destination (and the HTTP client the webhooks share); `ConfigError`
    names every destination that cannot be used."""
    client = httpx.Client(
        timeout=httpx.Timeout(timeout), follow_redirects=False, headers={"user-agent": user_agent}
    )
    asset = apprise.AppriseAsset(storage_mode="memory")
    adapters: dict[str, Adapter] = {}
    problems: list[str] = []
    for dest in destinations:
        try:
            adapters[dest.id] = _adapter(dest, client, timeout, asset, clock)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        client.close()
        raise ConfigError(problems)
    return adapters, client


def _adapter(
    dest: Destination,
    client: httpx.Client,
    timeout: float,
    asset: apprise.AppriseAsset,
    clock: Callable[[], float],
) -> Adapter:
    url = dest.url.get_secret_value()
    if dest.type == "apprise":
        return AppriseAdapter(dest.id, url, timeout, asset)
    if dest.secret is None:
        raise ConfigError([f"notifier destination {dest.id!r}: a webhook needs a secret"])
    try:
        key = signing_key(dest.secret.get_secret_value())
    except ConfigError as exc:
        raise ConfigError([f"notifier destination {dest.id!r}: {p}" for p in exc.problems]) from exc
    return WebhookAdapter(url, key, client, clock)


def close_adapters(adapters: Mapping[str, Adapter], client: httpx.Client) -> None:
    for adapter in adapters.values():
        adapter.close()
    client.close()
