"""`newsmon notifier`: consume alerts from Kafka and deliver them."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pipeline.cli_common import add_config_options, load_from_args
from pipeline.config import Config, Settings
from pipeline.errors import ConfigError
from pipeline.metrics import Metrics
from pipeline.notifier.adapters import build_adapters, close_adapters
from pipeline.notifier.delivered import DeliveredLedger, open_ledger
from pipeline.notifier.dispatch import Dispatcher
from pipeline.notifier.flags import add_destination_options, apply_destination_flags
from pipeline.notifier.sample import sample_alert
from pipeline.notifier.tasks import Delivered, GaveUp, Outcome
from pipeline.notifier.worker import NotifierWorker
from pipeline.runtime import LateProbe, setup_logging, start_metrics, stop_event

log = logging.getLogger(__name__)

TEST_SECONDS = 30.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "notifier", help="deliver alerts to chat (Apprise) and signed JSON webhooks"
    )
    add_config_options(parser)
    add_destination_options(parser)
    parser.add_argument(
        "--send-test", action="store_true",
        help="send a sample alert to every destination, print what happened and exit",
    )  # fmt: skip
    parser.set_defaults(func=cmd_notifier)


def cmd_notifier(args: argparse.Namespace) -> int:
    config = apply_destination_flags(args, load_from_args(args))
    settings = config.settings
    setup_logging(settings.log)
    if not settings.notifier.destinations:
        raise ConfigError(
            ["notifier.destinations: none configured (add some to the config, set "
             "NEWSMON_NOTIFIER__DESTINATIONS, or pass --webhook/--apprise)"]
        )  # fmt: skip
    metrics = Metrics()
    stop = stop_event()
    # A test alert is sent every time it is asked for: no ledger for it.
    ledger = None if args.send_test else kafka_ledger(config.state_dir, settings, metrics)
    dispatcher = Dispatcher(
        settings.notifier.destinations, settings.notifier, metrics,
        user_agent=settings.http.user_agent, sleep=stop.wait, ledger=ledger,
    )  # fmt: skip
    try:
        if args.send_test:
            return send_test(dispatcher)
        # /healthz and /readyz answer while the workers wait for a broker that is away.
        liveness = LateProbe()
        start_metrics(settings, metrics, liveness, kafka=True)
        worker = NotifierWorker(settings, metrics, stop, dispatcher)
        liveness.use(worker.healthy)
        worker.start()
        worker.join()
        return 0
    finally:
        dispatcher.close()


def kafka_ledger(
    state_dir: Path, settings: Settings, metrics: Metrics | None = None
) -> DeliveredLedger:
    """The delivery ledger of a notifier replica: a local cache of the `notifier.state`
    changelog, each alert's deliveries on the partition its alert is on."""
    from pipeline.corridor.kafka.changelog import KafkaChangelog
    from pipeline.corridor.kafka.membership import partition_count, partition_for_key

    ledger = open_ledger(state_dir, settings.notifier)
    kafka = settings.kafka
    partitions = partition_count(kafka, kafka.topics.alerts)
    if partitions == 0:
        ledger.close()
        raise ConfigError(
            [f"kafka.topics.alerts: {kafka.topics.alerts} not found: run `newsmon topics create`"]
        )
    changelog = KafkaChangelog(kafka, kafka.topics.notifier_state, "notifier")
    ledger.use_changelog(
        changelog, lambda alert_id: partition_for_key(alert_id, partitions), metrics
    )
    return ledger


def send_test(dispatcher: Dispatcher) -> int:
    """Deliver a sample alert (retrying for up to TEST_SECONDS); 0 if every destination took it."""
    now = dispatcher.clock()
    outcomes = dispatcher.deliver(sample_alert(now), until=now + TEST_SECONDS)
    for dest in dispatcher.destination_ids:
        print(f"{dest}: {describe(outcomes[dest])}")
    return 0 if all(isinstance(o, Delivered) for o in outcomes.values()) else 1


def describe(outcome: Outcome) -> str:
    if isinstance(outcome, Delivered):
        return f"delivered in {outcome.seconds:.2f}s"
    if isinstance(outcome, GaveUp):
        return f"failed ({outcome.error.reason}): {outcome.error}"
    return f"not delivered yet ({outcome.task.last_error or outcome.reason})"


def check_destinations(config: Config) -> None:
    """For `newsmon check-config`: Apprise URLs parse, webhooks have usable secrets."""
    notifier = config.settings.notifier
    adapters, client = build_adapters(
        notifier.destinations,
        notifier.timeout_seconds,
        config.settings.http.user_agent,
        lambda: 0.0,
    )
    close_adapters(adapters, client)


CONFIG_CHECKS = [check_destinations]
