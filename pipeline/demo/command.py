"""`newsmon demo`: the whole pipeline on a bundled news site, no internet needed."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from pipeline.config import Config, default_file, load_config
from pipeline.demo.server import DemoSite


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="serve sample feeds on 127.0.0.1 and show the alerts they raise"
    )
    group = demo.add_argument_group("configuration (the feeds are the demo site's)")
    group.add_argument("--config", type=Path, default=default_file("newsmon.yaml"))
    group.add_argument("--rules", type=Path, default=default_file("rules.yaml"))
    group.add_argument(
        "--state-dir", type=Path, default=None, help="local state (default: a scratch folder)"
    )
    demo.set_defaults(func=cmd_demo)


def write_demo_feeds(site: DemoSite, folder: Path) -> Path:
    feeds = [
        {"url": url, "name": f"demo-{name}", "tags": ["demo", name]}
        for name, url in site.feed_urls().items()
    ]
    path = folder / "feeds.yaml"
    path.write_text(yaml.safe_dump({"feeds": feeds}, sort_keys=False), encoding="utf-8")
    return path


def demo_config(args: argparse.Namespace, site: DemoSite, folder: Path) -> Config:
    """The user's settings and rules, the demo site's feeds; the site is on loopback, and
    /metrics takes any free port so a running newsmon keeps its own."""
    return load_config(
        config_path=args.config,
        feeds_path=write_demo_feeds(site, folder),
        rules_path=args.rules,
        state_dir=args.state_dir or folder / "state",
        overrides={"http": {"allow_private_networks": True}, "metrics": {"port": 0}},
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.local import run_pipeline

    site = DemoSite().start()
    try:
        with tempfile.TemporaryDirectory(prefix="newsmon-demo-") as scratch:
            config = demo_config(args, site, Path(scratch))
            print(f"demo news site on {site.base}; polling its feeds once…", file=sys.stderr)
            report = run_pipeline(config, once=True)
    finally:
        site.stop()
    print(
        f"\ndemo done: {report.stories} stories, {len(report.alerts)} alerts "
        f"({', '.join(sorted(a.rule_id for a in report.alerts)) or 'none'})",
        file=sys.stderr,
    )
    return 0
