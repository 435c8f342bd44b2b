from __future__ import annotations

import pytest

from pipeline.config import Destination
from pipeline.errors import ConfigError, DeliveryError, DeliveryRetryable
from pipeline.notifier.adapters import (
    AppriseAdapter,
    WebhookAdapter,
    build_adapters,
    check_status,
    close_adapters,
    with_socket_timeouts,
)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_success(status: int) -> None:
    check_status(status, None, 0.0)


@pytest.mark.parametrize(
    ("status", "retry_after", "reason", "wait"),
    [
        (500, None, "server_error", None),
        (503, "30", "server_error", 30.0),
        (429, "5", "throttled", 5.0),
        (429, None, "throttled", None),
        (408, None, "http_retry", None),
        (409, None, "http_retry", None),
        (425, None, "http_retry", None),
    ],
)
def test_retryable_statuses(
    status: int, retry_after: str | None, reason: str, wait: float | None
) -> None:
    with pytest.raises(DeliveryRetryable) as caught:
        check_status(status, retry_after, 0.0)
    assert caught.value.reason == reason
    assert caught.value.retry_after == wait


@pytest.mark.parametrize(
    ("status", "reason"), [(400, "rejected"), (401, "rejected"), (404, "rejected"), (410, "rejected"),
                           (413, "rejected"), (301, "redirect"), (307, "redirect")]
)  # fmt: skip
def test_permanent_statuses(status: int, reason: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        check_status(status, "5", 0.0)
    assert not isinstance(caught.value, DeliveryRetryable)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("slack://T/B/C", "slack://T/B/C?cto=7.5&rto=7.5"),
        ("json://host/p?format=markdown", "json://host/p?format=markdown&cto=7.5&rto=7.5"),
        ("json://host/p?cto=2", "json://host/p?cto=2&rto=7.5"),
        ("json://host/p?cto=2&rto=3", "json://host/p?cto=2&rto=3"),
    ],
)
def test_socket_timeouts_are_added_unless_given(url: str, expected: str) -> None:
    assert with_socket_timeouts(url, 7.5) == expected


def test_build_adapters_by_type() -> None:
    destinations = [
        Destination(id="chat", type="apprise", url="json://127.0.0.1:9/x"),
        Destination(id="hook", type="webhook", url="http://127.0.0.1:9/h", secret="raw secret"),
    ]
    adapters, client = build_adapters(destinations, 5.0, "newsmon-test", lambda: 0.0)
    try:
        assert isinstance(adapters["chat"], AppriseAdapter)
        assert isinstance(adapters["hook"], WebhookAdapter)
    finally:
        close_adapters(adapters, client)


def test_build_adapters_reports_every_bad_destination() -> None:
    destinations = [
        Destination(id="chat", type="apprise", url="nosuchservice://x"),
        Destination(id="nosecret", type="webhook", url="http://127.0.0.1:9/h"),
        Destination(id="badsecret", type="webhook", url="http://127.0.0.1:9/h", secret="whsec_@@"),
    ]
    with pytest.raises(ConfigError) as caught:
        build_adapters(destinations, 5.0, "newsmon-test", lambda: 0.0)
    problems = caught.value.problems
    assert len(problems) == 3
    assert "'chat'" in problems[0] and "nosuchservice://" in problems[0]
    assert "'nosecret'" in problems[1] and "needs a secret" in problems[1]
    assert "'badsecret'" in problems[2] and "base64" in problems[2]
