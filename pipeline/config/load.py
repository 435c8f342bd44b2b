"""Loading: the three files a command names, plus the taxonomy newsmon.yaml names,
read and cross-checked together, once, at the edge.

A file not named on the command line is `configs/<name>` in the working directory
when there is one (a checkout, the container's /app), else the example shipped
inside the package, so an installed newsmon starts from any directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.config.feeds import Feed, FeedsFile
from pipeline.config.rules import Rule, read_rules
from pipeline.config.schema import collect_before_reading, describe, read_yaml
from pipeline.config.settings import (
    DEFAULTS_DIR,
    ENV_DELIMITER,
    ENV_PREFIX,
    Settings,
    build_settings,
    resolve_paths,
)
from pipeline.config.taxonomy import TaxonomyFile, read_taxonomy
from pipeline.errors import ConfigError

LOCAL_CONFIGS = Path("configs")
DEFAULT_CONFIG = LOCAL_CONFIGS / "newsmon.yaml"
DEFAULT_FEEDS = LOCAL_CONFIGS / "feeds.yaml"
DEFAULT_RULES = LOCAL_CONFIGS / "rules.yaml"
DEFAULT_STATE_DIR = Path(".newsmon")


def default_file(name: str) -> Path:
    """`configs/<name>` when the working directory has one, else the packaged example."""
    local = LOCAL_CONFIGS / name
    return local if local.is_file() else DEFAULTS_DIR / name


@dataclass(frozen=True)
class Config:
    """Everything a command needs, validated together."""

    settings: Settings
    feeds: list[Feed]
    rules: list[Rule]
    taxonomy: TaxonomyFile
    state_dir: Path = DEFAULT_STATE_DIR
    config_path: Path = DEFAULT_CONFIG
    feeds_path: Path = DEFAULT_FEEDS
    rules_path: Path = DEFAULT_RULES
    overrides: Mapping[str, Any] = field(default_factory=dict)


def load_config(
    config_path: Path | None = None,
    feeds_path: Path | None = None,
    rules_path: Path | None = None,
    state_dir: Path = DEFAULT_STATE_DIR,
    overrides: Mapping[str, Any] | None = None,
    *,
    checks: Iterable[Callable[[Settings], None]] = (),
) -> Config:
    """Load and cross-check every file; raise one `ConfigError` listing every problem.

    `checks` add problems of their own (`newsmon check-config`: are the NER models
    installed?) to the same list, so one run names everything to fix.
    """
    config_path = config_path or default_file("newsmon.yaml")
    feeds_path = feeds_path or default_file("feeds.yaml")
    rules_path = rules_path or default_file("rules.yaml")
    problems: list[str] = []
    settings = _load_settings(config_path, overrides or {}, problems)
    feeds = _read_feeds(feeds_path, problems)
    rules = _read_rules(rules_path, problems)
    taxonomy = read_taxonomy(settings.nlp.topics_file, problems) if settings else None
    if settings is not None:
        problems.extend(_unknown_destinations(rules_path, rules, settings))
        problems.extend(_run_checks(checks, settings))
    if problems or settings is None or taxonomy is None:
        raise ConfigError(problems)
    return Config(
        settings=settings,
        feeds=feeds,
        rules=rules,
        taxonomy=taxonomy,
        state_dir=state_dir,
        config_path=config_path,
        feeds_path=feeds_path,
        rules_path=rules_path,
        overrides=dict(overrides or {}),
    )


def _run_checks(checks: Iterable[Callable[[Settings], None]], settings: Settings) -> list[str]:
    problems: list[str] = []
    for check in checks:
        try:
            check(settings)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def load_rules(rules_path: Path, previous: Sequence[Rule] = ()) -> list[Rule]:
    """Load only a rules file (for `newsmon match` and hot reload). A rule equal to its
    version in `previous` (the rules a reload replaces) is that object, not a copy."""
    problems: list[str] = []
    collect_before_reading(rules_path)
    rules = read_rules(rules_path, problems, previous)
    if problems:
        raise ConfigError(problems)
    return rules


def rules_problems(rules_path: Path, settings: Settings) -> list[str]:
    """What `check-config` says of a rules file on its own: schema and destinations."""
    problems: list[str] = []
    rules = _read_rules(rules_path, problems)
    return problems + _unknown_destinations(rules_path, rules, settings)


def load_feeds(feeds_path: Path) -> list[Feed]:
    problems: list[str] = []
    feeds = _read_feeds(feeds_path, problems)
    if problems:
        raise ConfigError(problems)
    return feeds


def _load_settings(
    path: Path, overrides: Mapping[str, Any], problems: list[str]
) -> Settings | None:
    values = read_yaml(path, problems)
    resolve_paths(values, path.parent)
    try:
        return build_settings(values, dict(overrides))
    except ValidationError as exc:
        problems.extend(_describe_settings(path, exc))
    except ConfigError as exc:
        problems.extend(exc.problems)
    return None


def _describe_settings(path: Path, exc: ValidationError) -> list[str]:
    """A bad value from the environment is named by its variable, not by newsmon.yaml."""
    lines = []
    for line, error in zip(describe(path, exc), exc.errors(), strict=True):
        env = _env_name([str(p) for p in error["loc"]])
        lines.append(f"{env}{line.removeprefix(str(path))}" if env else line)
    return lines


def _read_feeds(path: Path, problems: list[str]) -> list[Feed]:
    before = len(problems)
    data = read_yaml(path, problems)
    if len(problems) > before:
        return []
    try:
        return list(FeedsFile.model_validate(data).feeds)
    except ValidationError as exc:
        problems.extend(describe(path, exc, entries=data.get("feeds")))
        return []


def _read_rules(path: Path, problems: list[str]) -> list[Rule]:
    """A rules file is read piecewise (`rules_stream`), its garbage collected first."""
    collect_before_reading(path)
    return read_rules(path, problems)


def _env_name(loc: list[str]) -> str | None:
    name = ENV_PREFIX + ENV_DELIMITER.join(p.upper() for p in loc if not p.isdigit())
    for candidate in (name, name + "_FILE"):
        if any(key.upper() == candidate for key in os.environ):
            return candidate
    return None


def _unknown_destinations(path: Path, rules: list[Rule], settings: Settings) -> list[str]:
    known = {d.id for d in settings.notifier.destinations}
    problems = []
    for index, rule in enumerate(rules):
        for target in rule.notify:
            if known and target not in known:
                problems.append(
                    f"{path}: rules[{index}] (id {rule.id!r}): field 'notify': "
                    f"unknown destination {target!r} (known: {', '.join(sorted(known))})"
                )
    return problems
