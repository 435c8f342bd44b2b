"""`newsmon run`: flags and entry point (the pipeline itself is in `pipeline/local.py`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.cli_common import add_config_options, add_fetch_options, load_from_args
from pipeline.config import Config
from pipeline.notifier.flags import add_destination_options, apply_destination_flags


def add_run_options(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    add_destination_options(parser)
    add_fetch_options(parser)
    parser.add_argument(
        "--once", action="store_true",
        help="poll every feed once, process every new story, deliver every alert, exit",
    )  # fmt: skip


def load_run_config(args: argparse.Namespace, **overrides: Any) -> Config:
    return apply_destination_flags(args, load_from_args(args, **overrides))


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.local import run_pipeline

    config = load_run_config(args)
    report = run_pipeline(config, once=args.once)
    print(
        f"done: {report.stories} new stories, {report.enriched} enriched, "
        f"{len(report.alerts)} alerts, {report.dead_letters} dead letters",
        file=sys.stderr,
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="the whole pipeline in one process, no broker")
    add_run_options(run)
    run.set_defaults(func=cmd_run)
