"""Telling a changed rules file: every way a file gets replaced is picked up, on a quiet
`newsmon run` too.

An atomic replace is how the console saves (write a copy, fsync, rename), how most
editors save, and, one level up, how Kubernetes updates a mounted ConfigMap (a new
directory, then its `..data` symlink swapped). The checks below keep size and mtime
equal on purpose, so only the identity of the file the path names tells the change.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pipeline.config import RulesSettings, load_config
from pipeline.console.rule_edit import save_rules
from pipeline.local import LocalPipeline
from pipeline.metrics import Metrics
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import MEMORY, AlertStore

ROOT = Path(__file__).resolve().parents[2]
TESLA = "rules:\n  - id: tesla\n    terms: [Tesla]\n"
RIVAN = "rules:\n  - id: rivan\n    terms: [Rivan]\n"  # the same size as TESLA


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def engine_on(path: Path, ticker: Ticker) -> RulesEngine:
    return RulesEngine(
        path, RulesSettings(reload_check_seconds=5), AlertStore(MEMORY),
        Metrics(CollectorRegistry()), monotonic=ticker,
    )  # fmt: skip


def same_times(path: Path, like: os.stat_result) -> None:
    os.utime(path, ns=(like.st_atime_ns, like.st_mtime_ns), follow_symlinks=True)


def loaded_ids(engine: RulesEngine) -> list[str]:
    return [rule.id for rule in engine.compiled.rules]


def test_a_save_by_rename_with_the_same_size_and_mtime_is_picked_up(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TESLA, encoding="utf-8")
    ticker = Ticker()
    engine = engine_on(rules, ticker)
    before = rules.stat()
    save_rules(rules, RIVAN)  # the console's save: .prev kept, the file replaced by rename
    same_times(rules, before)
    assert rules.stat().st_size == before.st_size
    ticker.now += 5
    assert engine.reload_if_due()
    assert loaded_ids(engine) == ["rivan"]
    ticker.now += 5
    assert not engine.reload_if_due(), "an unchanged file is not read again"


def test_a_configmap_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    """The layout kubelet keeps for a mounted ConfigMap; an update writes a new timestamped
    directory and renames a fresh `..data` symlink over the old one."""
    mount = tmp_path / "config"
    first, second = mount / "..2026_12_01_17_00_00.1", mount / "..2026_12_01_17_05_00.2"
    first.mkdir(parents=True)
    (first / "rules.yaml").write_text(TESLA, encoding="utf-8")
    (mount / "..data").symlink_to(first.name)
    (mount / "rules.yaml").symlink_to("..data/rules.yaml")
    ticker = Ticker()
    engine = engine_on(mount / "rules.yaml", ticker)
    before = (mount / "rules.yaml").stat()
    second.mkdir()
    (second / "rules.yaml").write_text(RIVAN, encoding="utf-8")
    same_times(second / "rules.yaml", before)
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    ticker.now += 5
    assert engine.reload_if_due()
    assert loaded_ids(engine) == ["rivan"]


def test_a_rules_file_gone_for_a_while_keeps_the_rules_and_is_read_when_back(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TESLA, encoding="utf-8")
    ticker = Ticker()
    engine = engine_on(rules, ticker)
    rules.unlink()
    ticker.now += 5
    assert not engine.reload_if_due()
    assert loaded_ids(engine) == ["tesla"]
    errors = {"outcome": "error"}
    assert engine.metrics.registry.get_sample_value("newsmon_rule_reloads_total", errors) == 1
    rules.write_text(RIVAN, encoding="utf-8")
    ticker.now += 5
    assert engine.reload_if_due()
    assert loaded_ids(engine) == ["rivan"]


def test_newsmon_run_takes_up_a_saved_rules_file_while_no_story_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, `newsmon run` looked at the file only when a story reached the rules stage:
    a rule saved in the console was neither in force nor logged until the next story."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(TESLA, encoding="utf-8")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: http://127.0.0.1:9/feed.xml\n    name: local\n")
    config = load_config(
        ROOT / "configs" / "newsmon.yaml", feeds, rules, tmp_path / "state",
        overrides={"extraction": {"workers": 1}, "rules": {"reload_check_seconds": 0.01}},
    )  # fmt: skip
    metrics = Metrics(CollectorRegistry())
    done = threading.Event()
    done.set()
    pipeline = LocalPipeline(config, metrics, threading.Event())
    try:
        save_rules(rules, RIVAN)
        with caplog.at_level(logging.INFO, logger="pipeline.rules.engine"):
            for _ in range(50):
                pipeline.step()
                if loaded_ids(pipeline.engine) == ["rivan"]:
                    break
                done.wait(0.02)
        assert loaded_ids(pipeline.engine) == ["rivan"]
        reloads = {"outcome": "ok"}
        assert metrics.registry.get_sample_value("newsmon_rule_reloads_total", reloads) == 1
        assert any(r.getMessage() == "rules reloaded" for r in caplog.records)
    finally:
        pipeline.close(done)
