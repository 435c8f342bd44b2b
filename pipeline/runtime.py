"""What every long-running command does at start: logging, stop signals, /metrics."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from pipeline.config import LogSettings, Settings
from pipeline.metrics import Metrics, serve_metrics

log = logging.getLogger(__name__)

LOG_FIELDS = (
    "feed", "story_id", "alert_id", "rule", "destination", "topic", "partition", "offset",
    "reason", "stage",
)  # fmt: skip
"""The stable keys of structured logs: pass them as `extra=`, never inside the message."""

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record: the stable keys first, in `LOG_FIELDS` order, then
    any other extra a caller added, in the order given."""
    extra = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
    stable = {k: extra.pop(k) for k in LOG_FIELDS if k in extra}
    return {**stable, **extra}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: each `extra=` field is a JSON field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **log_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The plain line, then the `extra=` fields as key=value, so terminals show them too."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        pairs = [f"{key}={_text_value(value)}" for key, value in log_fields(record).items()]
        return " ".join([line, *pairs])


def _text_value(value: object) -> str:
    """Bare when it reads unambiguously, else JSON-quoted ('feed="BBC World"')."""
    text = str(value)
    if text and not any(c.isspace() or c in '"=' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def setup_logging(settings: LogSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    noisy_libraries = ("kafka", "aiohttp", "httpx", "httpcore", "trafilatura", "htmldate",
                       "courlan", "apprise")  # fmt: skip
    for noisy in noisy_libraries:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the runner finishes what it holds, then exits."""
    event = threading.Event()

    def _request_stop(signum: int, _frame: object) -> None:
        log.info("stop requested", extra={"reason": signal.Signals(signum).name})
        event.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    return event


def start_metrics(
    settings: Settings,
    metrics: Metrics,
    health: Callable[[], bool] | None = None,
    *,
    kafka: bool = False,
) -> ThreadingHTTPServer | None:
    """Serve /metrics, /healthz and /readyz when enabled; the port comes from config.

    Liveness and readiness are apart on purpose: a worker waiting for an unreachable
    broker is alive (restarting it would only throw away what it holds) but not ready
    (`/readyz` answers 503 and names the Kafka clients still waiting). A worker on Kafka
    (`kafka=True`) is not ready before its first client exists either.
    """
    if not settings.metrics.enabled:
        return None
    server = serve_metrics(
        metrics, settings.metrics.host, settings.metrics.port, health,
        kafka_readiness(metrics, expected=kafka),
    )  # fmt: skip
    host, port = settings.metrics.host, server.server_address[1]
    log.info("metrics listening", extra={"host": host, "port": port})
    return server


def kafka_readiness(metrics: Metrics, *, expected: bool = False) -> Callable[[], str | None]:
    """Ready once every Kafka client of the process has reached the broker and while it
    still does (`newsmon_kafka_up`). With `expected`, not ready before the first client
    exists; otherwise (`newsmon run`) a process without Kafka clients is ready."""

    def reason() -> str | None:
        if expected and not metrics.kafka_clients():
            return "not connected to Kafka yet"
        waiting = metrics.brokers_unreachable()
        if not waiting:
            return None
        return "Kafka broker unreachable (or not reached yet) from " + ", ".join(waiting)

    return reason


class LateProbe:
    """A liveness check known only later: green until `use` gives the real one, so that
    `/healthz` answers while a worker waits at start-up for a broker that is away."""

    def __init__(self) -> None:
        self._check: Callable[[], bool] | None = None

    def use(self, check: Callable[[], bool]) -> None:
        self._check = check

    def __call__(self) -> bool:
        return True if self._check is None else self._check()


class Liveness:
    """`/healthz` of a worker: healthy while its loop keeps going round.

    A worker stuck longer than `max_silence` (a hung handler, a dead loop) answers 503
    so the orchestrator restarts it; its uncommitted records are then redelivered.
    """

    def __init__(self, max_silence: float) -> None:
        self.max_silence = max_silence
        self._beat_at = time.monotonic()

    def beat(self) -> None:
        self._beat_at = time.monotonic()

    def __call__(self) -> bool:
        return time.monotonic() - self._beat_at < self.max_silence
