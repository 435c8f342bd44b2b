"""`newsmon ...`: parse the command line, load the config once, start one thing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline import run_command
from pipeline.cli_common import add_config_options, load_from_args
from pipeline.config import Config, Settings
from pipeline.console import commands as console_commands
from pipeline.demo import command as demo_command
from pipeline.errors import ConfigError, PipelineError
from pipeline.extractor import commands as extractor_commands
from pipeline.notifier import commands as notifier_commands
from pipeline.poller import commands as poller_commands
from pipeline.rules import commands as rules_commands

Command = Callable[[argparse.Namespace], int]

# Each stage adds its own subcommands, and its own checks to `newsmon check-config`.
STAGE_COMMANDS = (
    poller_commands,
    extractor_commands,
    rules_commands,
    notifier_commands,
    run_command,
    demo_command,
    console_commands,
)
SETTINGS_CHECKS: tuple[Callable[[Settings], None], ...] = (*extractor_commands.SETTINGS_CHECKS,)
CONFIG_CHECKS: tuple[Callable[[Config], None], ...] = (
    *rules_commands.CONFIG_CHECKS,
    *notifier_commands.CONFIG_CHECKS,
)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_from_args(args, checks=SETTINGS_CHECKS)
    for check in CONFIG_CHECKS:
        check(config)
    destinations = len(config.settings.notifier.destinations)
    print(
        f"ok: {config.config_path} ({destinations} destinations), "
        f"{config.feeds_path} ({len(config.feeds)} feeds), "
        f"{config.rules_path} ({len(config.rules)} rules), "
        f"{config.settings.nlp.topics_file} ({len(config.taxonomy.topics)} topics)"
    )
    if args.show:
        print(json.dumps(config.settings.masked_dump(), indent=2))
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from pipeline.corridor.kafka import clients

    config = load_from_args(args).settings
    settings, history_days = config.kafka, config.rules.history_days
    created = clients.create_topics(settings, history_days=history_days)
    partitions = clients.describe_topics(settings)
    for spec in clients.topic_specs(settings, history_days):
        state = "created" if spec.name in created else "exists"
        kept = ""
        if spec.name == settings.topics.enriched:
            kept = f", the history: kept at least {history_days:g} days (rules.history_days)"
        print(f"{state}: {spec.name} ({partitions.get(spec.name, '?')} partitions{kept})")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from pipeline.models import write_json_schemas

    for path in write_json_schemas(args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsmon", description="Streaming news monitor: feeds in, alerts out."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate newsmon.yaml, feeds.yaml and rules.yaml")
    add_config_options(check)
    check.add_argument("--show", action="store_true", help="print the settings, secrets masked")
    check.set_defaults(func=cmd_check_config)

    topics = sub.add_parser("topics", help="manage Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topics_sub.add_parser("create", help="create every topic (safe to run twice)")
    add_config_options(create)
    create.set_defaults(func=cmd_topics_create)

    schemas = sub.add_parser("schemas", help="write the JSON Schemas of the wire contracts")
    schemas.add_argument("--out", type=Path, default=Path("docs/schemas"))
    schemas.set_defaults(func=cmd_schemas)

    for module in STAGE_COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print("newsmon: configuration errors:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"newsmon: {exc.reason}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
