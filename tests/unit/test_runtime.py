"""/metrics and /healthz served for real on loopback; liveness of a worker loop."""

from __future__ import annotations

import time

import httpx

from pipeline.metrics import Metrics, serve_metrics
from pipeline.runtime import Liveness


def test_liveness_turns_unhealthy_when_the_loop_stops_beating() -> None:
    liveness = Liveness(max_silence=0.2)
    assert liveness()
    time.sleep(0.3)
    assert not liveness()
    liveness.beat()
    assert liveness()


def test_metrics_and_healthz_are_served() -> None:
    metrics = Metrics()
    metrics.polls.labels("ok").inc(3)
    healthy = {"now": True}
    server = serve_metrics(metrics, "127.0.0.1", 0, health=lambda: healthy["now"])
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        text = httpx.get(f"{base}/metrics").text
        assert 'newsmon_feed_polls_total{outcome="ok"} 3.0' in text
        assert httpx.get(f"{base}/healthz").status_code == 200
        healthy["now"] = False
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.shutdown()
        server.server_close()
