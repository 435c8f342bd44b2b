"""`newsmon backtest`: what a rules file would have raised over the stored history.

It reads the history without joining any consumer group (`pipeline/history/sources.py`)
and runs the rules engine of `newsmon match` on it (`pipeline/rules/backtest.py`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from pipeline.cli_common import add_config_options, load_from_args
from pipeline.config import Config, load_rules
from pipeline.history.sources import History, HistoryRead, KafkaHistory, LocalHistory
from pipeline.history.timerange import TimeRange, parse_time_range
from pipeline.rules.backtest import Backtest, Change, raiser, tester_engine, write_report

BROKER_TIMEOUT_SECONDS = 30.0


def add_backtest_options(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    when = parser.add_argument_group("time range (default: the whole history kept)")
    when.add_argument("--since", metavar="DURATION", help="the last 7d, 36h, 90m, ...")
    when.add_argument(
        "--from", dest="start", metavar="T", help="ISO date or time (UTC unless it says), or 36h"
    )
    when.add_argument("--to", dest="end", metavar="T", help="same forms as --from; default now")
    parser.add_argument(
        "--compare", type=Path, metavar="RULES",
        help="a rules file to compare with (e.g. the one in force): alerts added and removed",
    )  # fmt: skip
    parser.add_argument(
        "--jsonl", action="store_true",
        help="print the alerts (with --compare: the changes) as JSON lines instead of the report",
    )  # fmt: skip
    parser.add_argument(
        "--source", choices=("local", "kafka"), default="local",
        help="local: the history `newsmon run` keeps in --state-dir; kafka: the enriched topic",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=BROKER_TIMEOUT_SECONDS, metavar="SECONDS",
        help=f"longest wait on the broker (default {BROKER_TIMEOUT_SECONDS:g})",
    )  # fmt: skip
    parser.add_argument(
        "--progress", action="store_true", help="a progress bar on stderr even when not a TTY"
    )


def open_history(args: argparse.Namespace, config: Config) -> History:
    if args.source == "kafka":
        return KafkaHistory(config.settings.kafka, args.timeout)
    return LocalHistory.open(config.state_dir)


def cmd_backtest(args: argparse.Namespace) -> int:
    window = parse_time_range(args.since, args.start, args.end, time.time())
    config = load_from_args(args)
    compared_rules = load_rules(args.compare) if args.compare else []
    settings = config.settings.rules
    tested = tester_engine(config.rules_path, config.rules, settings)
    compared = tester_engine(args.compare, compared_rules, settings) if args.compare else None
    backtest = Backtest(
        raiser(tested), tested.compiled.rules,
        raiser(compared) if compared else None,
        compared.compiled.rules if compared else (),
    )  # fmt: skip
    started = time.monotonic()
    history = open_history(args, config)
    try:
        read = history.read(window.since, window.until)
        shown = args.progress or sys.stderr.isatty()
        run(backtest, read, sys.stdout, jsonl=args.jsonl, shown=shown)
    finally:
        history.close()
        tested.close()
        if compared is not None:
            compared.close()
    heading = _heading(backtest, history.where, window, args, time.monotonic() - started)
    if args.jsonl:
        print(heading, file=sys.stderr)
    else:
        write_report(backtest, heading, sys.stdout)
    return 0


def run(backtest: Backtest, read: HistoryRead, out: TextIO, *, jsonl: bool, shown: bool) -> None:
    """Every story of `read` through the backtest; with `jsonl`, its alerts (or changes)
    to `out` as they come; a progress bar on stderr if `shown`."""
    with progress(read.size, shown) as advance:
        for payload in read.payloads:
            alerts, changes = backtest.add_payload(payload)
            if jsonl:
                _write_lines(alerts, changes, backtest.compared is not None, out)
            advance()
    out.flush()


def _write_lines(alerts: list[Any], changes: list[Change], compared: bool, out: TextIO) -> None:
    if not compared:
        for alert in alerts:
            out.write(alert.to_bytes().decode("utf-8") + "\n")
        return
    for change in changes:
        alert = change.alert.to_bytes().decode("utf-8")
        out.write(f'{{"change":"{change.kind}","alert":{alert}}}\n')


@contextmanager
def progress(total: int, shown: bool) -> Iterator[Any]:
    """A progress bar on stderr (tqdm); a no-op when not shown."""
    if not shown:
        yield lambda: None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit=" stories", file=sys.stderr, mininterval=0.5) as bar:
        yield lambda: bar.update(1)


def _heading(
    backtest: Backtest, where: str, window: TimeRange, args: argparse.Namespace, seconds: float
) -> str:
    tested = sum(1 for o in backtest.outcomes.values() if o.tested)
    line = (
        f"newsmon backtest: {backtest.stories:,} stories from {where}, "
        f"{window.describe()}; {tested} rules in {args.rules}"
    )
    if args.compare:
        compared = sum(1 for o in backtest.outcomes.values() if o.compared)
        line += f" compared with {compared} in {args.compare}"
    alerts = sum(o.alerts for o in backtest.outcomes.values())
    line += f"; {alerts:,} alerts; {seconds:.1f} s"
    if backtest.unreadable:
        line += f"; {backtest.unreadable} unreadable stories skipped"
    return line


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backtest = subparsers.add_parser(
        "backtest",
        help="what a rules file would have raised over the stored history",
        description="Reads the history of enriched stories (the history store of `newsmon "
        "run`, or the enriched topic on Kafka, by a consumer in no group) and prints, per "
        "rule, the alerts it would have raised and the newest few headlines; with --compare, "
        "the alerts each rule gains and loses. Alerts as `newsmon match` raises them: each "
        "story at most once per rule, near-duplicates once, no throttling.",
    )
    add_backtest_options(backtest)
    backtest.set_defaults(func=cmd_backtest)
