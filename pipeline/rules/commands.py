"""`newsmon rules` (the Kafka worker) and `newsmon match` (the rule tester)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline.cli_common import add_config_options, load_from_args
from pipeline.config import Config, RulesSettings, default_file, load_rules
from pipeline.errors import DecodeError
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, decode
from pipeline.rules.compile import compile_rules

if TYPE_CHECKING:  # the engine pulls in datasketch (and scipy): only the commands that run it
    from pipeline.rules.engine import RulesEngine

log = logging.getLogger(__name__)


def check_rules_compile(config: Config) -> None:
    """`check-config` also catches terms that cannot match (no letters or digits)."""
    compile_rules(config.rules, config.rules_path)


CONFIG_CHECKS = [check_rules_compile]


def cmd_rules(args: argparse.Namespace) -> int:
    from pipeline.corridor.kafka.changelog import KafkaChangelog
    from pipeline.history.sources import KafkaHistory
    from pipeline.rules.engine import open_engine, reload_on_sighup
    from pipeline.rules.worker import RulesWorker
    from pipeline.runtime import Liveness, setup_logging, start_metrics, stop_event

    config = load_from_args(args)
    settings = config.settings
    setup_logging(settings.log)
    metrics = Metrics()
    changelog = KafkaChangelog(settings.kafka, settings.kafka.topics.rules_state, "rules")
    engine = open_engine(
        config, metrics, changelog, history=lambda timeout: KafkaHistory(settings.kafka, timeout)
    )
    reload_on_sighup(engine)
    stop = stop_event()
    liveness = Liveness(settings.kafka.max_poll_interval_seconds)
    start_metrics(settings, metrics, health=liveness, kafka=True)
    worker = RulesWorker(engine, settings.kafka, metrics, stop, on_round=liveness.beat)
    log.info(
        "rules worker started",
        extra={"rules": len(engine.compiled.rules), "state_dir": str(config.state_dir)},
    )
    worker.run()
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    """Print the alerts the rules would raise on the stories read from stdin."""
    from pipeline.rules.backtest import tester_engine

    rules = load_rules(args.rules)
    engine = tester_engine(args.rules, rules, RulesSettings(snippet_chars=args.snippet_chars))
    stories, alerts, bad = match_lines(engine, sys.stdin, sys.stdout, sys.stderr)
    print(
        f"newsmon match: {stories} stories, {alerts} alerts, {len(engine.compiled.rules)} rules"
        + (f", {bad} unreadable lines" if bad else ""),
        file=sys.stderr,
    )
    return 1 if bad else 0


def match_lines(
    engine: RulesEngine, lines: Iterable[str], out: TextIO, err: TextIO
) -> tuple[int, int, int]:
    """(stories read, alerts printed, unreadable lines); a bad line is reported and skipped."""
    stories = alerts = bad = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            story = decode(EnrichedStory, line)
        except DecodeError as exc:
            print(f"newsmon match: line {number}: {exc}", file=err)
            bad += 1
            continue
        stories += 1
        for alert in engine.process(story):
            out.write(alert.to_bytes().decode("utf-8") + "\n")
            alerts += 1
        engine.confirm_all()
    out.flush()
    return stories, alerts, bad


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pipeline.rules import backtest_command

    rules = subparsers.add_parser(
        "rules", help="match enriched stories against the rules and publish alerts (Kafka)"
    )
    add_config_options(rules)
    rules.set_defaults(func=cmd_rules)

    match = subparsers.add_parser(
        "match",
        help="rule tester: read enriched stories (JSON lines) on stdin, print the alerts",
        description="Reads the JSON lines `newsmon enrich` writes and prints, one JSON line "
        "each, the alerts the rules would raise (each story at most once per rule; "
        "near-duplicates in the input count as the same story; no throttling).",
    )
    match.add_argument(
        "--rules", type=Path, default=default_file("rules.yaml"), help="rules file to test"
    )
    match.add_argument("--snippet-chars", type=int, default=RulesSettings().snippet_chars)
    match.set_defaults(func=cmd_match)
    backtest_command.register(subparsers)
