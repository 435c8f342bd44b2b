"""`newsmon ...`: parse the command line, load the config once, start one thing."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.cli_common import add_config_options, load_from_args
from pipeline.errors import ConfigError, PipelineError

log = logging.getLogger("newsmon")

Command = Callable[[argparse.Namespace], int]

# Each stage adds its own subcommands; the lookup keeps stages out of this module.
STAGE_COMMANDS = (
    "pipeline.poller.commands",
    "pipeline.extractor.commands",
    "pipeline.rules.commands",
    "pipeline.notifier.commands",
    "pipeline.run_command",
)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_from_args(args)
    for check in _config_checks():
        check(config)
    destinations = len(config.settings.notifier.destinations)
    print(
        f"ok: {args.config} ({destinations} destinations), "
        f"{args.feeds} ({len(config.feeds)} feeds), {args.rules} ({len(config.rules)} rules)"
    )
    if args.show:
        print(json.dumps(config.settings.masked_dump(), indent=2))
    return 0


def _config_checks() -> list[Callable[..., None]]:
    """Stage-specific checks (e.g. the topic taxonomy) that stages register in `CONFIG_CHECKS`."""
    checks: list[Callable[..., None]] = []
    for name in STAGE_COMMANDS:
        module = _import_optional(name)
        checks.extend(getattr(module, "CONFIG_CHECKS", ()))
    return checks


def cmd_topics_create(args: argparse.Namespace) -> int:
    from pipeline.corridor.kafka import clients

    settings = load_from_args(args).settings.kafka
    created = clients.create_topics(settings)
    partitions = clients.describe_topics(settings)
    for spec in clients.topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        print(f"{state}: {spec.name} ({partitions.get(spec.name, '?')} partitions)")
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

    for name in STAGE_COMMANDS:
        module = _import_optional(name)
        if module is not None and hasattr(module, "register"):
            module.register(sub)
    return parser


def _import_optional(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


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
