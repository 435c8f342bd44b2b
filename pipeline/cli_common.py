"""Flags every command shares, and the one place they become a `Config`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import (
    DEFAULT_CONFIG,
    DEFAULT_FEEDS,
    DEFAULT_RULES,
    DEFAULT_STATE_DIR,
    Config,
    load_config,
)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="newsmon.yaml")
    group.add_argument("--feeds", type=Path, default=DEFAULT_FEEDS, help="feeds.yaml")
    group.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="rules.yaml")
    group.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="local state (default .newsmon)"
    )


def load_from_args(args: argparse.Namespace, **overrides: Any) -> Config:
    """Load the config named by the flags; `overrides` are nested settings from other flags."""
    return load_config(
        config_path=args.config,
        feeds_path=args.feeds,
        rules_path=args.rules,
        state_dir=args.state_dir,
        overrides=overrides,
    )
