"""`newsmon console`: the web console (off unless started)."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from pipeline.cli_common import add_config_options, load_from_args

log = logging.getLogger(__name__)

CONSOLE_DIR = "console"
"""On Kafka the console keeps its own store, apart from any `newsmon run` history."""


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from pipeline.console.app import Console, build_app, templates
    from pipeline.console.security import (
        LoginThrottle,
        access_for,
        session_secret,
        split_bind,
    )
    from pipeline.history.feeder import HistoryWriter, start_kafka_feeder
    from pipeline.history.store import HistoryStore
    from pipeline.metrics import Metrics
    from pipeline.runtime import setup_logging, start_metrics

    overrides: dict[str, Any] = {}
    if args.bind:
        overrides["console"] = {"bind": args.bind}
    if args.source:
        overrides.setdefault("console", {})["source"] = args.source
    config = load_from_args(args, **overrides)
    settings = config.settings
    setup_logging(settings.log)
    host, port = split_bind(settings.console.bind)
    access = access_for(settings.console, host)
    metrics = Metrics()
    stop = threading.Event()
    kafka = settings.console.source == "kafka"
    store = HistoryStore.in_dir(config.state_dir / CONSOLE_DIR if kafka else config.state_dir)
    feeder = None
    if kafka:
        topics = settings.kafka.topics
        writer = HistoryWriter(
            store, metrics, settings.rules.history_days,
            enriched=topics.enriched, alerts=topics.alerts,
        )  # fmt: skip
        feeder = start_kafka_feeder(writer, settings.kafka, metrics, stop)

    def healthy() -> bool:
        return feeder is None or feeder.is_alive()

    console = Console(
        config, store, metrics, access,
        LoginThrottle(settings.console.login_attempts, settings.console.login_window_seconds),
        templates(), healthy,
    )  # fmt: skip
    start_metrics(settings, metrics, health=healthy)
    app = build_app(console, session_secret(settings.console))
    source = "kafka" if kafka else "local"
    log.info(
        "console listening",
        extra={"host": host, "port": port, "login": access.required, "source": source},
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(timeout=30)
        store.close()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    console = sub.add_parser(
        "console", help="the web console: alerts, stories, rules and feeds in a browser"
    )
    add_config_options(console)
    console.add_argument(
        "--bind", default=None, help="HOST:PORT to listen on (default console.bind, 127.0.0.1:8080)"
    )
    console.add_argument(
        "--source", choices=("local", "kafka"), default=None,
        help="local: the history `newsmon run` writes in --state-dir (default); "
        "kafka: fill the console's own store from the alerts and enriched topics",
    )  # fmt: skip
    console.set_defaults(func=cmd_console)
