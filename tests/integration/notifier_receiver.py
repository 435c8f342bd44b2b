"""A webhook receiver on 127.0.0.1 for the notifier's tests: real HTTP, scripted answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.models import Alert

TESTDATA = Path(__file__).resolve().parent.parent / "testdata" / "notifier"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str]]


class Receiver:
    """Records every request; answers 200 unless told otherwise (`answer`, `down_for`)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.answer: Callable[[str, dict[str, str]], Answer] = lambda path, headers: (200, {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = receiver.answer(self.path, headers)
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.path, headers, body, status, time.time())
                    )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def down_for(
        self, seconds: float, status: int = 503, headers: dict[str, str] | None = None
    ) -> float:
        """Answer `status` until `seconds` from now; returns when the outage ends."""
        until = time.time() + seconds
        self.answer = lambda path, h: (status, headers or {}) if time.time() < until else (200, {})
        return until

    def always(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.answer = lambda path, h: (status, headers or {})

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.ok]

    def wait_for(self, accepted: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.accepted()) >= accepted:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_alert(n: int, **changes: Any) -> Alert:
    base = Alert.model_validate_json((TESTDATA / "alert.json").read_bytes())
    return base.model_copy(update={"alert_id": f"alert-{n:04d}", **changes})
