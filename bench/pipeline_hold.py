"""Pipeline CPU at fixed rates: the cores each process takes while one mode holds a rate.

Run from the project root (a Kafka broker is needed for the Kafka modes, as for
pipeline_latency.py):

    /tmp/venv/bin/python bench/pipeline_hold.py                       # 2 extractors, 6/s, 25 s
    /tmp/venv/bin/python bench/pipeline_hold.py --rates 6 7 --seconds 30 --mode "kafka, 1 extractor"

Where pipeline_latency.py searches for the highest rate that holds, this holds the rates
given, on the same loopback site and with the same settings, and prints for each: the
probe's verdict, the CPU cores of every process, the cores of the processes around the
extraction pools (worker mains, rules, notifier, poller and its pool, broker, the
bench's site), and the pools' CPU per story against the bare calls' (measured just
before the hold, in two processes). It is the tool for comparing a change's CPU cost
at one load: read the ratios, as the host's speed drifts.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import pipeline_baseline
import pipeline_procs
from pipeline_latency import in_work_folder, report_probe, running, world
from pipeline_probe import Probe
from pipeline_site import load_corpus

from pipeline.config import Settings

BARE_PAGES = 69
WARM_SECONDS = 4.0
# Before the first rate: 30 s a little below the lowest (see pipeline_latency.running).
STEADY_SECONDS = 30.0
STEADY_SHARE = 0.8


def is_pool(name: str) -> bool:
    """An extraction pool (`extractor-1 pool`, `run pool`), not the poller's parse pool."""
    return name.endswith(" pool") and not name.startswith("poller")


def report(probe: Probe, bare: pipeline_baseline.Baseline) -> None:
    ours = {name: cores for name, cores in probe.cores.items() if name != "machine"}
    pools = sum(cores for name, cores in ours.items() if is_pool(name))
    around = sum(cores for name, cores in ours.items() if not is_pool(name))
    print("    " + ", ".join(f"{name} {cores:.3f}" for name, cores in ours.items()))
    print(
        f"    around the pools {around:.3f} cores; pools {pools:.3f} cores, "
        f"{(pools / probe.rate) / (2 / bare.rate):.2f}x the bare calls' CPU per story",
        flush=True,
    )


def hold(args: argparse.Namespace, folder: Path) -> None:
    mode = {m.name: m for m in pipeline_procs.MODES}[args.mode]
    model = Settings().nlp.models["en"]
    with (
        pipeline_procs.broker(args.bootstrap, folder / "broker") as bootstrap,
        world(load_corpus()) as site,
    ):
        pages = [site.pages.page(n) for n in range(BARE_PAGES)]
        steady = (STEADY_SHARE * min(args.rates), STEADY_SECONDS)
        with running(mode, site, bootstrap, folder, steady=steady, overrides=args.overrides) as (
            _,
            pacer,
        ):
            print(f"{mode.name}: up and warm; broker {bootstrap}", flush=True)
            for rate in args.rates:
                bare = pipeline_baseline.measure(pages, model)
                print(f"  bare calls: {bare.rate:.2f} stories/s", flush=True)
                probe = replace(pacer.probe(rate, WARM_SECONDS, args.seconds), bare=bare.rate)
                report(report_probe(probe), bare)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--mode", default="kafka, 2 extractors", choices=[m.name for m in pipeline_procs.MODES]
    )
    parser.add_argument("--rates", nargs="+", type=float, default=[6.0], metavar="STORIES_PER_S")
    parser.add_argument("--seconds", type=float, default=25.0, help="counted window per rate")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: see pipeline_procs)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
        help="a newsmon.yaml setting for the pipeline (repeatable)",
    )  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    code = in_work_folder("newsmon-hold-", lambda folder: hold(args, folder))
    print(f"{time.monotonic() - started:.0f} s in all")
    return code


if __name__ == "__main__":
    sys.exit(main())
