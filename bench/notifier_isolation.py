"""Does one broken destination slow the others down? Delivery time to a healthy webhook.

    /tmp/venv/bin/python bench/notifier_isolation.py [--alerts 300] [--rounds 3]

Delivers `--alerts` alerts through the one-process delivery path (`LocalDelivery`:
journal, scheduler, dispatcher, signed webhook adapter) to a healthy webhook
receiver on 127.0.0.1 and times until the receiver has all of them, in four runs:

  bare       plain httpx POSTs of the same bodies, one after another (the baseline)
  healthy    newsmon, one healthy destination
  +down      newsmon, plus a destination answering 503 to everything
  +hanging   newsmon, plus a destination that accepts connections and never answers
             (every attempt waits for its 1 s timeout)

Figures are medians of `--rounds` rounds, printed as ratios: `healthy/bare` is the
cost of journalling, signing and scheduling; `+down/healthy` and `+hanging/healthy`
should stay near 1.0, since each destination has its own lane.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from pipeline.config import Destination, NotifierSettings  # noqa: E402
from pipeline.metrics import Metrics  # noqa: E402
from pipeline.models import Alert  # noqa: E402
from pipeline.notifier.dispatch import Dispatcher  # noqa: E402
from pipeline.notifier.local import LocalDelivery  # noqa: E402

ALERT = ROOT / "tests" / "testdata" / "notifier" / "alert.json"
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1iZW5jaG1hcmstc2VjcmV0"
FAST = {"rate_per_second": 10_000.0, "burst": 1000}


class Counter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200
    seen: set[str]
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.lock:
            self.seen.add(self.headers.get("webhook-id") or self.headers.get("x-id") or "")
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(status: int) -> tuple[ThreadingHTTPServer, set[str]]:
    seen: set[str] = set()
    handler = type("Handler", (Counter,), {"status": status, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def url(server: ThreadingHTTPServer | socket.socket) -> str:
    address = server.server_address if hasattr(server, "server_address") else server.getsockname()
    return f"http://127.0.0.1:{address[1]}/hook"


def alerts(count: int, run: str) -> list[Alert]:
    base = Alert.model_validate_json(ALERT.read_bytes())
    return [base.model_copy(update={"alert_id": f"{run}-{n}"}) for n in range(count)]


def time_bare(count: int, run: str) -> float:
    server, seen = serve(200)
    batch = alerts(count, run)
    started = time.perf_counter()
    with httpx.Client(timeout=5) as client:
        for alert in batch:
            client.post(url(server), content=alert.to_bytes(), headers={"x-id": alert.alert_id})
    elapsed = time.perf_counter() - started
    server.shutdown()
    assert len(seen) == count
    return elapsed


def time_newsmon(count: int, run: str, broken: str | None) -> float:
    healthy, seen = serve(200)
    destinations = [
        Destination(id="healthy", type="webhook", url=url(healthy), secret=SECRET, **FAST)
    ]
    extra = _broken(broken)
    if extra is not None:
        destinations.append(
            Destination(id="broken", type="webhook", url=url(extra), secret=SECRET, **FAST)
        )
    settings = NotifierSettings(
        timeout_seconds=1.0, backoff_initial_seconds=0.2, backoff_max_seconds=2.0
    )
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as state:
        dispatcher = Dispatcher(destinations, settings, Metrics(), sleep=stop.wait)
        delivery = LocalDelivery(dispatcher, Path(state), dispatcher.metrics)
        delivery.start()
        started = time.perf_counter()
        for alert in alerts(count, run):
            delivery.submit(alert)
        while len(seen) < count:
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        stop.set()
        delivery.close()
        dispatcher.close()
    healthy.shutdown()
    _close(extra)
    return elapsed


def _broken(kind: str | None) -> ThreadingHTTPServer | socket.socket | None:
    if kind == "down":
        return serve(503)[0]
    if kind == "hanging":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)  # connections queue in the kernel; nobody ever answers
        return sock
    return None


def _close(extra: ThreadingHTTPServer | socket.socket | None) -> None:
    if isinstance(extra, ThreadingHTTPServer):
        extra.shutdown()
    elif extra is not None:
        extra.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the broken destinations' retries are expected
    runs: dict[str, list[float]] = {"bare": [], "healthy": [], "+down": [], "+hanging": []}
    for r in range(args.rounds):
        runs["bare"].append(time_bare(args.alerts, f"bare{r}"))
        runs["healthy"].append(time_newsmon(args.alerts, f"healthy{r}", None))
        runs["+down"].append(time_newsmon(args.alerts, f"down{r}", "down"))
        runs["+hanging"].append(time_newsmon(args.alerts, f"hanging{r}", "hanging"))
    median = {name: statistics.median(times) for name, times in runs.items()}
    print(f"{args.alerts} alerts to a healthy webhook on 127.0.0.1, median of {args.rounds} rounds")
    for name, seconds in median.items():
        print(f"  {name:<9} {seconds:7.3f} s  {args.alerts / seconds:8.0f} alerts/s")
    print(f"healthy / bare         = {median['healthy'] / median['bare']:.2f}x")
    print(f"+down / healthy        = {median['+down'] / median['healthy']:.2f}x")
    print(f"+hanging / healthy     = {median['+hanging'] / median['healthy']:.2f}x")


if __name__ == "__main__":
    main()
