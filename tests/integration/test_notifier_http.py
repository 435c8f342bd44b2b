"""Adapters against real HTTP on 127.0.0.1: signed webhooks and Apprise services."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from notifier_receiver import Receiver, make_alert
from standardwebhooks import Webhook

from pipeline.config import Destination
from pipeline.errors import DeliveryError, DeliveryRetryable
from pipeline.models import Alert, decode
from pipeline.notifier.adapters import Adapter, build_adapters, close_adapters
from pipeline.notifier.signing import as_whsec

pytestmark = pytest.mark.integration

SECRET = as_whsec(b"a secret of thirty-two bytes!!!!")


def adapter_for(destination: Destination, timeout: float = 2.0) -> Iterator[Adapter]:
    adapters, client = build_adapters([destination], timeout, "newsmon-test/1", time.time)
    try:
        yield adapters[destination.id]
    finally:
        close_adapters(adapters, client)


@pytest.fixture
def webhook(receiver: Receiver) -> Iterator[Adapter]:
    destination = Destination(id="hook", type="webhook", url=receiver.url("/in"), secret=SECRET)
    yield from adapter_for(destination)


def test_webhook_posts_the_alert_signed(receiver: Receiver, webhook: Adapter) -> None:
    alert = make_alert(1)
    webhook.deliver(alert)
    (request,) = receiver.requests
    assert request.path == "/in"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "newsmon-test/1"
    assert request.headers["webhook-id"] == alert.alert_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified == json.loads(alert.to_bytes())
    assert decode(Alert, request.body) == alert


def test_every_attempt_is_signed_afresh_with_the_same_id(
    receiver: Receiver, webhook: Adapter
) -> None:
    alert = make_alert(2)
    receiver.down_for(0.5)
    with pytest.raises(DeliveryRetryable):
        webhook.deliver(alert)
    time.sleep(1.1)
    webhook.deliver(alert)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == alert.alert_id
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    Webhook(SECRET).verify(second.body, second.headers)


# status, response headers, the error raised, its reason, its retry_after
StatusCase = tuple[int, dict[str, str], type[DeliveryError | DeliveryRetryable], str, float | None]
STATUS_CASES: list[StatusCase] = [
    (503, {"Retry-After": "7"}, DeliveryRetryable, "server_error", 7.0),
    (429, {"Retry-After": "2"}, DeliveryRetryable, "throttled", 2.0),
    (500, {}, DeliveryRetryable, "server_error", None),
    (408, {}, DeliveryRetryable, "http_retry", None),
    (400, {}, DeliveryError, "rejected", None),
    (410, {}, DeliveryError, "rejected", None),
    (302, {"Location": "http://127.0.0.1:9/elsewhere"}, DeliveryError, "redirect", None),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=[str(c[0]) for c in STATUS_CASES])
def test_webhook_statuses(receiver: Receiver, webhook: Adapter, case: StatusCase) -> None:
    status, headers, error, reason, retry_after = case
    receiver.always(status, headers)
    with pytest.raises(error) as caught:
        webhook.deliver(make_alert(3))
    assert isinstance(caught.value, DeliveryRetryable) == (error is DeliveryRetryable)
    assert caught.value.reason == reason
    if isinstance(caught.value, DeliveryRetryable):
        assert caught.value.retry_after == retry_after
    assert len(receiver.requests) == 1  # no redirect followed, no hidden retry


def test_webhook_unreachable_and_timeout_are_retryable(receiver: Receiver) -> None:
    port = receiver.port
    receiver.close()
    closed = Destination(id="gone", type="webhook", url=f"http://127.0.0.1:{port}/x", secret="s")
    for adapter in adapter_for(closed):
        with pytest.raises(DeliveryRetryable) as caught:
            adapter.deliver(make_alert(4))
        assert caught.value.reason == "unreachable"


def test_webhook_timeout_is_retryable(receiver: Receiver) -> None:
    def slow(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        time.sleep(1.5)
        return 200, {}

    receiver.answer = slow
    destination = Destination(id="slow", type="webhook", url=receiver.url(), secret="s")
    for adapter in adapter_for(destination, timeout=0.3):
        started = time.monotonic()
        with pytest.raises(DeliveryRetryable) as caught:
            adapter.deliver(make_alert(5))
        assert caught.value.reason == "timeout"
        assert time.monotonic() - started < 1.2


def apprise_adapter(url: str) -> Iterator[Adapter]:
    yield from adapter_for(Destination(id="chat", type="apprise", url=url))


def test_apprise_json_service_gets_title_and_markdown(receiver: Receiver) -> None:
    url = receiver.url("/apprise").replace("http://", "json://")
    for adapter in apprise_adapter(url):
        adapter.deliver(make_alert(6))
    (request,) = receiver.requests
    payload: dict[str, Any] = request.json()
    assert payload["title"] == "EV makers: Tesla recalls *2 million* cars [update] <b>"
    assert payload["message"].startswith("**[Tesla recalls \\*2 million\\* cars")
    assert "(https://news.example.com/autos/tesla-recall%20%28update%29)**" in payload["message"]
    assert "- title: **Tesla** recalls" in payload["message"]
    assert payload["type"] == "warning"  # severity high


def test_apprise_mattermost_on_a_custom_host(receiver: Receiver) -> None:
    url = f"mmost://127.0.0.1:{receiver.port}/token123"
    for adapter in apprise_adapter(url):
        adapter.deliver(make_alert(7, severity="critical"))
    (request,) = receiver.requests
    assert request.path == "/hooks/token123"
    text = request.json()["text"]
    assert "EV makers" in text and "[Tesla recalls" in text


def test_apprise_failure_is_retryable(receiver: Receiver) -> None:
    receiver.always(500)
    url = receiver.url("/apprise").replace("http://", "json://")
    for adapter in apprise_adapter(url):
        with pytest.raises(DeliveryRetryable) as caught:
            adapter.deliver(make_alert(8))
        assert caught.value.reason == "apprise_failed"
