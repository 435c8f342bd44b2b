"""Alerts and scripted adapters for the notifier's unit tests (data in tests/testdata/notifier)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.errors import DeliveryRetryable
from pipeline.models import Alert

TESTDATA = Path(__file__).resolve().parent.parent / "testdata" / "notifier"
FAST = {"rate_per_second": 1000.0, "burst": 1000}


def load_alert(name: str = "alert.json") -> Alert:
    return Alert.model_validate_json((TESTDATA / name).read_bytes())


def make_alert(n: int = 1, **changes: Any) -> Alert:
    """The fixture alert with alert id `alert-<n>` (and any other field changed)."""
    return load_alert().model_copy(update={"alert_id": f"alert-{n}", **changes})


def expected(name: str) -> str:
    return (TESTDATA / name).read_text(encoding="utf-8").rstrip("\n")


class Scripted:
    """Answers each delivery with the next scripted result: None = success, else raise it."""

    def __init__(self, results: Iterable[Exception | None] = ()) -> None:
        self.results = list(results)
        self.sent: list[str] = []

    def deliver(self, alert: Alert) -> None:
        self.sent.append(alert.alert_id)
        result = self.results.pop(0) if self.results else None
        if result is not None:
            raise result

    def close(self) -> None:
        pass


def down(retry_after: float | None = None) -> DeliveryRetryable:
    return DeliveryRetryable("HTTP 503", reason="server_error", retry_after=retry_after)
