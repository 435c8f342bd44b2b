"""`newsmon demo`: the whole pipeline on a bundled news site, no internet needed."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipeline.cli_common import add_config_options
from pipeline.demo.server import DemoSite


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="serve sample feeds on 127.0.0.1 and show the alerts they raise"
    )
    add_config_options(demo)
    demo.set_defaults(func=cmd_demo, state_dir=None)


def write_demo_feeds(site: DemoSite, folder: Path) -> Path:
    feeds = [
        {"url": url, "name": f"demo-{name}", "tags": ["demo", name]}
        for name, url in site.feed_urls().items()
    ]
    path = folder / "feeds.yaml"
    path.write_text(yaml.safe_dump({"feeds": feeds}, sort_keys=False), encoding="utf-8")
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.local import run_pipeline
    from pipeline.run_command import load_run_config

    site = DemoSite().start()
    with tempfile.TemporaryDirectory(prefix="newsmon-demo-") as scratch:
        folder = Path(scratch)
        args.feeds = write_demo_feeds(site, folder)
        args.state_dir = args.state_dir or folder / "state"
        args.allow_private_networks = True
        args.webhook, args.webhook_secret, args.apprise = [], [], []
        print(f"demo news site on {site.base}; polling its feeds once…", file=sys.stderr)
        config = load_run_config(args, metrics={"port": 0})
        report = run_pipeline(config, once=True)
    site.stop()
    print(
        f"\ndemo done: {report.stories} stories, {len(report.alerts)} alerts "
        f"({', '.join(sorted(a.rule_id for a in report.alerts)) or 'none'})",
        file=sys.stderr,
    )
    return 0
