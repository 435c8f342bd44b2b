"""`newsmon poller` and `newsmon feeds import|status`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.cli_common import add_config_options, add_fetch_options, load_from_args
from pipeline.config import DEFAULT_FEEDS, Config, KafkaSettings, load_feeds
from pipeline.metrics import Metrics
from pipeline.models import RawStory
from pipeline.poller.cycle import AllFeeds, CycleReport, Ownership
from pipeline.poller.feedlist import append_feeds, format_table, plan_import, status_rows
from pipeline.poller.stage import FeedPoller
from pipeline.poller.state import FeedState, SqliteStateStore, StateStore

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    poller = sub.add_parser(
        "poller", help="poll RSS/Atom feeds and publish new stories to the raw topic"
    )
    add_config_options(poller)
    _add_state_option(poller)
    poller.add_argument(
        "--once", action="store_true", help="poll every feed once, publish, save state and exit"
    )
    add_fetch_options(poller)
    poller.set_defaults(func=cmd_poller)

    feeds = sub.add_parser("feeds", help="the feed list: import OPML, show health")
    actions = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    importer = actions.add_parser("import", help="add the feeds of an OPML file to feeds.yaml")
    add_config_options(importer)
    importer.add_argument("opml", type=Path, help="the OPML file")
    importer.set_defaults(feeds=DEFAULT_FEEDS)  # writes here, never into the packaged example
    importer.set_defaults(func=cmd_feeds_import)
    status = actions.add_parser("status", help="each feed's health from the poller state")
    add_config_options(status)
    _add_state_option(status)
    status.set_defaults(func=cmd_feeds_status)


def _add_state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        choices=("kafka", "local"),
        default="kafka",
        help="kafka: compacted topic, replicas share the feeds (default); "
        "local: a sqlite file under --state-dir, one replica only",
    )


def _load(args: argparse.Namespace) -> Config:
    return load_from_args(args)


def publish_stories(producer: Any, topic: str, stories: list[RawStory]) -> None:
    """Blocks until Kafka acknowledged every story; keyed by story id."""
    from pipeline.corridor.records import Output

    producer.publish([Output(topic, story.id, story.to_bytes()) for story in stories])


def cmd_poller(args: argparse.Namespace) -> int:
    from pipeline.corridor.kafka.clients import Producer, create_topics
    from pipeline.corridor.kafka.outage import BrokerWatch
    from pipeline.runtime import LateProbe, setup_logging, start_metrics, stop_event

    config = _load(args)
    settings = config.settings
    setup_logging(settings.log)
    stop = stop_event()
    metrics = Metrics()
    # /healthz and /readyz answer from the start: a broker that is away at start-up is
    # waited for, and meanwhile the poller is alive but not ready.
    liveness = LateProbe()
    if not args.once:
        start_metrics(settings, metrics, health=liveness, kafka=True)
    watch = BrokerWatch(settings.kafka, "poller", metrics, stop)
    create_topics(settings.kafka, watch, history_days=settings.rules.history_days)
    producer = Producer(settings.kafka, watch)
    store = _open_store(args.state, config, producer, watch)
    ownership = _ownership(args, settings.kafka, BrokerWatch(settings.kafka, "poller-member",
                                                             metrics, stop))  # fmt: skip
    poller = FeedPoller(
        config.feeds,
        settings,
        publish=partial(publish_stories, producer, settings.kafka.topics.raw),
        store=store,
        metrics=metrics,
        ownership=ownership,
        guard=partial(_check_broker, watch, ownership),
    )
    liveness.use(poller.healthy)
    log.info(
        "poller starting",
        extra={"feeds": len(poller.feeds), "state": args.state, "once": args.once},
    )
    try:
        report = asyncio.run(poller.run(stop, once=args.once))
    finally:
        ownership.close()
        store.close()
        producer.close()
    return _summarise(report) if args.once else 0


def _open_store(kind: str, config: Config, producer: Any = None, watch: Any = None) -> StateStore:
    if kind == "local":
        return SqliteStateStore(config.state_dir)
    from pipeline.poller.worker import KafkaStateStore

    return KafkaStateStore(config.settings.kafka, producer, watch)


def _ownership(args: argparse.Namespace, kafka: KafkaSettings, watch: Any = None) -> Ownership:
    """A one-off run or a local state file means a single replica: it owns every feed."""
    if args.once or args.state == "local":
        return AllFeeds()
    from pipeline.poller.worker import KafkaOwnership

    return KafkaOwnership(kafka, watch=watch)


def _check_broker(watch: Any, ownership: Ownership) -> None:
    """Each round of the poll loop: end it (exit 1, the reason logged) once the broker has
    been away longer than `kafka.unavailable_exit_seconds`, as every worker does."""
    watch.check()
    check = getattr(ownership, "check", None)
    if check is not None:
        check()


def _summarise(report: CycleReport) -> int:
    polls = ", ".join(f"{outcome} {n}" for outcome, n in sorted(report.polls.items()))
    print(f"polled: {polls or 'nothing'}; new stories: {report.stories}")
    for feed, error in sorted(report.errors.items()):
        print(f"  {feed}: {error}", file=sys.stderr)
    total = sum(report.polls.values())
    failed = report.polls["error"] + report.polls["throttled"]
    return 1 if total and failed == total else 0


def cmd_feeds_import(args: argparse.Namespace) -> int:
    existing = load_feeds(args.feeds) if args.feeds.exists() else []
    plan = plan_import(existing, args.opml.read_bytes())
    args.feeds.parent.mkdir(parents=True, exist_ok=True)
    append_feeds(args.feeds, plan.added)
    for feed in plan.added:
        print(f"added: {feed.name} <{feed.url}>")
    for reason in plan.skipped:
        print(f"skipped: {reason}")
    print(f"{len(plan.added)} feeds added to {args.feeds}, {len(plan.skipped)} skipped")
    return 0


def cmd_feeds_status(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _open_store(args.state, config)
    try:
        states: dict[str, FeedState] = store.load()
    finally:
        store.close()
    print(format_table(status_rows(config.feeds, states, time.time())))
    return 0
