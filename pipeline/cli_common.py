"""Flags every command shares, and the one place they become a `Config`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.config import DEFAULT_STATE_DIR, Config, Settings, default_file, load_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config, --feeds, --rules: `configs/<file>` here if there is one, else the
    examples shipped with newsmon (so an installed newsmon starts anywhere)."""
    group = parser.add_argument_group("configuration")
    for flag in ("config", "feeds", "rules"):
        name = "newsmon.yaml" if flag == "config" else f"{flag}.yaml"
        default = default_file(name)
        group.add_argument(f"--{flag}", type=Path, default=default, help=f"default {default}")
    group.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="local state (default .newsmon)"
    )


def add_fetch_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that fetch feeds or pages."""
    parser.add_argument(
        "--allow-private-networks",
        action="store_true",
        help="let feeds and pages live on private/loopback addresses (intranets, tests); "
        "sets http.allow_private_networks",
    )


def load_from_args(
    args: argparse.Namespace, checks: Iterable[Callable[[Settings], None]] = (), **overrides: Any
) -> Config:
    """Load the config named by the flags; `overrides` are nested settings from other flags,
    `checks` extra validation whose problems are reported with the load's."""
    if getattr(args, "allow_private_networks", False):
        overrides.setdefault("http", {})["allow_private_networks"] = True
    return load_config(
        config_path=args.config,
        feeds_path=args.feeds,
        rules_path=args.rules,
        state_dir=args.state_dir,
        overrides=overrides,
        checks=checks,
    )
