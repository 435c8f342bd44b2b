"""The live rule set (hot reload, SIGHUP), the stage around it and the `newsmon match` tester."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rules_stories import seed_story, story

from pipeline.config import RulesSettings
from pipeline.corridor.records import Message
from pipeline.errors import ConfigError, DecodeError, PipelineError
from pipeline.metrics import Metrics
from pipeline.models import Alert, alert_id_for, decode
from pipeline.rules.commands import match_lines, register
from pipeline.rules.engine import RulesEngine, reload_on_sighup
from pipeline.rules.stage import RulesStage
from pipeline.rules.store import MEMORY, AlertStore
from pipeline.runtime import log_fields

ROOT = Path(__file__).resolve().parents[2]
TESLA_RULE = "rules:\n  - id: tesla\n    terms: [Tesla]\n"
RIVIAN_TOO = TESLA_RULE + "  - id: rivian\n    terms: [Rivian]\n"
BAD_RULES = TESLA_RULE + "  - id: rivian\n    terms: [Rivian]\n    entity_types: [COMPANY]\n"


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(TESLA_RULE, encoding="utf-8")
    return path


def live_engine(rules_file: Path, ticker: Ticker) -> RulesEngine:
    return RulesEngine(
        rules_file,
        RulesSettings(reload_check_seconds=5),
        AlertStore(MEMORY),
        Metrics(CollectorRegistry()),
        monotonic=ticker,
    )


def fired(engine: RulesEngine, text: str) -> list[str]:
    url = f"https://e.example/{abs(hash(text))}"
    alerts = engine.process(story(text, url=url))
    engine.confirm_all()
    return [a.rule_id for a in alerts]


def reloads(engine: RulesEngine, outcome: str) -> float | None:
    registry = engine.metrics.registry
    return registry.get_sample_value("newsmon_rule_reloads_total", {"outcome": outcome})


def test_a_changed_rules_file_is_picked_up_without_restart(rules_file: Path) -> None:
    ticker = Ticker()
    engine = live_engine(rules_file, ticker)
    assert fired(engine, "Rivian and Tesla") == ["tesla"]
    rules_file.write_text(RIVIAN_TOO, encoding="utf-8")
    ticker.now += 1
    assert fired(engine, "Rivian and Tesla again") == ["tesla"]  # not checked yet
    ticker.now += 5
    assert fired(engine, "Rivian and Tesla once more") == ["tesla", "rivian"]
    assert reloads(engine, "ok") == 1
    assert engine.metrics.registry.get_sample_value("newsmon_rules_loaded") == 2


def test_a_bad_rules_file_keeps_the_old_rules(
    rules_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ticker = Ticker()
    engine = live_engine(rules_file, ticker)
    rules_file.write_text(BAD_RULES, encoding="utf-8")
    ticker.now += 10
    with caplog.at_level(logging.ERROR, logger="pipeline.rules.engine"):
        assert fired(engine, "Rivian and Tesla") == ["tesla"]
    assert reloads(engine, "error") == 1
    [failed] = [r for r in caplog.records if r.getMessage().startswith("rules reload failed")]
    reason = log_fields(failed)["reason"]
    assert f"{rules_file}: rules[1] (id 'rivian'): field 'entity_types'" in reason


@pytest.fixture
def restore_sighup() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.mark.usefixtures("restore_sighup")
def test_sighup_reloads_even_when_the_file_looks_unchanged(rules_file: Path) -> None:
    ticker = Ticker()
    engine = live_engine(rules_file, ticker)
    stat = rules_file.stat()
    same_size = TESLA_RULE.replace("tesla", "rivan").replace("Tesla", "Rivan")
    rules_file.write_text(same_size, encoding="utf-8")
    os.utime(rules_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ticker.now += 10
    assert fired(engine, "Rivan and Tesla") == ["tesla"]  # the periodic check sees no change
    reload_on_sighup(engine)
    os.kill(os.getpid(), signal.SIGHUP)
    assert fired(engine, "Rivan and Tesla again") == ["rivan"]


def message(value: bytes, offset: int, partition: int = 0) -> Message:
    return Message(topic="enriched", partition=partition, offset=offset, key=None, value=value)


def test_stage_keys_alerts_by_id_and_dead_letters_bad_records() -> None:
    engine = live_engine(ROOT / "configs" / "rules.yaml", Ticker())
    stage = RulesStage(engine, "alerts")
    good = seed_story().to_bytes()
    results = stage.handle_batch([message(b"{not json", 7), message(good, 8)])
    assert isinstance(results[0], DecodeError)
    outputs = results[1]
    assert not isinstance(outputs, BaseException)
    assert [(o.topic, o.key) for o in outputs] == [
        ("alerts", alert_id_for(rule, seed_story().id))
        for rule in ("tesla", "qin-gang", "unbundling")
    ]
    assert decode(Alert, outputs[0].value).story.url == seed_story().url


def test_stage_confirms_only_what_the_runner_has_committed() -> None:
    engine = live_engine(ROOT / "configs" / "rules.yaml", Ticker())
    stage = RulesStage(engine, "alerts")
    good = seed_story().to_bytes()
    first = stage.handle_batch([message(good, 8)])[0]
    again = stage.handle_batch([message(good, 8)])[0]  # re-handled: not known to be committed
    assert not isinstance(first, PipelineError)
    assert first == again and len(first) == 3
    later = stage.handle_batch([message(good, 9)])[0]  # 8 was committed: its alerts went out
    assert later == []


def test_match_lines_prints_each_alert_once_and_reports_bad_lines() -> None:
    engine = live_engine(ROOT / "configs" / "rules.yaml", Ticker())
    seed_line = seed_story().model_dump_json()
    out, err = io.StringIO(), io.StringIO()
    counts = match_lines(engine, [seed_line, "oops\n", "\n", seed_line], out, err)
    assert counts == (2, 3, 1)
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["rule_id"], a["story"]["url"]) for a in printed] == [
        (rule, seed_story().url) for rule in ("tesla", "qin-gang", "unbundling")
    ]
    assert err.getvalue().startswith("newsmon match: line 2: not JSON")


def run_match(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    """`newsmon match ...` as the CLI parses and runs it (without importing the other stages)."""
    parser = argparse.ArgumentParser(prog="newsmon")
    register(parser.add_subparsers())
    namespace = parser.parse_args(["match", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code: int = namespace.func(namespace)
    out, err = capsys.readouterr()
    return code, out, err


def test_match_command_end_to_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_match(
        monkeypatch, capsys, "--rules", "configs/rules.yaml", stdin=seed_story().model_dump_json()
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["rule_id"] for line in lines] == ["tesla", "qin-gang", "unbundling"]
    assert "1 stories, 3 alerts, 3 rules" in err


def test_an_invalid_rule_stops_the_tester_naming_file_rule_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(BAD_RULES, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        run_match(monkeypatch, capsys, "--rules", str(bad))
    [problem] = caught.value.problems
    assert problem.startswith(f"{bad}: rules[1] (id 'rivian'): field 'entity_types': unknown")
