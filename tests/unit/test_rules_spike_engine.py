"""Spike rules in the engine: the rules file, one alert per spike through the ledger on
both paths (a story at once, and Kafka's candidate decided by its rule's owner), its
wire form and its chat message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rules_stories import story

from pipeline.config import RulesSettings, load_rules
from pipeline.corridor.records import Message
from pipeline.errors import ConfigError
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, decode
from pipeline.notifier.format import chat_message
from pipeline.rules.dedup import signature
from pipeline.rules.engine import RulesEngine
from pipeline.rules.stage import RulesStage
from pipeline.rules.store import MEMORY, AlertStore, SourcePosition

T0 = datetime(2026, 1, 5, tzinfo=UTC)
RULES = """\
rules:
  - id: tesla
    terms: [Tesla]
  - id: tesla-surge
    name: Tesla surge
    terms: [Tesla]
    severity: high
    spike: {window: 1h, baseline: 1d, factor: 3, min_count: 5}
"""


def timeline() -> list[EnrichedStory]:
    """A story about Tesla every two hours for two days, then ten in twenty minutes."""
    quiet = [T0 + timedelta(hours=2 * k) for k in range(24)]
    burst = [T0 + timedelta(hours=48, minutes=2 * k) for k in range(10)]
    stories = []
    for n, at in enumerate(quiet + burst):
        url = f"https://news.example/{n}"
        base = story(f"Tesla news number {n}.", title=f"Tesla headline {n}", url=url)
        stories.append(base.model_copy(update={"published": at, "first_seen": at}))
    return stories


def engine_for(tmp_path: Path, store: AlertStore | None = None) -> RulesEngine:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return RulesEngine(
        path, RulesSettings(), store or AlertStore(MEMORY), Metrics(CollectorRegistry()),
        clock=lambda: T0.timestamp() + 50 * 3600,
    )  # fmt: skip


def message(s: EnrichedStory, offset: int) -> Message:
    return Message(topic="enriched", partition=0, offset=offset, key=None, value=s.to_bytes())


def spikes_fired(engine: RulesEngine) -> float | None:
    registry = engine.metrics.registry
    return registry.get_sample_value("newsmon_spikes_fired_total", {"severity": "high"})


def test_a_spike_rule_fires_once_per_spike_beside_a_per_story_rule(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    stage = RulesStage(engine, "alerts")
    out: list[Alert] = []
    for offset, s in enumerate(timeline()):
        [outputs] = stage.handle_batch([message(s, offset)])
        assert isinstance(outputs, list)
        out += [decode(Alert, o.value) for o in outputs]  # the wire contract holds
        stage.published([message(s, offset)])

    per_story = [a for a in out if a.rule_id == "tesla"]
    [spike] = [a for a in out if a.rule_id == "tesla-surge"]
    assert len(per_story) == 20  # 34 stories, throttled at 20 an hour; the spike is apart
    assert spike.kind == "spike" and spike.severity == "high"
    assert spike.spike is not None
    assert spike.spike.window_count == 5 and spike.spike.baseline_mean == 0.5
    assert [h.title for h in spike.spike.headlines][:2] == [
        "Tesla headline 28",
        "Tesla headline 27",
    ]
    assert spike.story.title == "Tesla headline 28"  # the story that set it off
    assert spike.raised_at == T0 + timedelta(hours=50)  # the injected clock
    assert spikes_fired(engine) == 1
    message_text = chat_message(spike)
    assert message_text.title == "Tesla surge: spike, 5 stories in 1h"
    assert "against 0.5 per 1h over the previous 1d (factor 3, at least 5)" in message_text.body


def test_a_spike_alert_read_again_before_it_was_confirmed_goes_out_again_the_same(
    tmp_path: Path,
) -> None:
    engine = engine_for(tmp_path)
    stage = RulesStage(engine, "alerts")
    fired_at = None
    for offset, s in enumerate(timeline()):
        [outputs] = stage.handle_batch([message(s, offset)])
        assert isinstance(outputs, list)
        if any(o.key == spike_id(o.value) for o in outputs):
            fired_at = (offset, s, outputs)
            break
        stage.published([message(s, offset)])
    assert fired_at is not None
    offset, s, first = fired_at
    [again] = stage.handle_batch([message(s, offset)])  # a kill -9 before the confirmation
    assert isinstance(again, list)
    assert [o.value for o in again] == [o.value for o in first]
    stage.published([message(s, offset)])
    [after] = stage.handle_batch([message(s, offset)])
    assert after == []


def spike_id(value: bytes) -> str | None:
    alert = decode(Alert, value)
    return alert.alert_id if alert.kind == "spike" else None


def test_on_kafka_the_owner_of_the_rules_partition_counts_and_decides(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    decided: list[Alert] = []
    for offset, s in enumerate(timeline()):
        minhash = signature(s)
        for candidate in engine.candidates(s):
            position = SourcePosition("candidates", 3, offset)
            alert = engine.decide_candidate(candidate, minhash, position)
            decided += [alert] if alert is not None else []
    assert [a.kind for a in decided if a.rule_id == "tesla-surge"] == ["spike"]
    assert engine.store.tables.partitions() == {3}  # counts and alerts kept under partition 3
    rows = engine.store.tables.rows("spike_counts")
    assert {r["part"] for r in rows} == {3}


@pytest.mark.parametrize(
    ("spike", "expected"),
    [
        ("{window: 1x}", "field 'spike.window': not a duration: '1x'"),
        ("{window: 30s}", "field 'spike.window': the window must be whole minutes, from 1m to 30d"),
        (
            "{window: 1h, baseline: 90m}",
            "field 'spike.baseline': the baseline must be a whole number of windows",
        ),
        (
            "{window: 5m, baseline: 30d}",
            "field 'spike.baseline': the baseline must be a whole number of windows, 1 to 2016 (here 8640)",
        ),
        ("{window: 1h, factor: 1}", "field 'spike.factor': Input should be greater than 1"),
        ("{window: 1h, min_count: 0}", "field 'spike.min_count': Input should be greater than"),
        ("{baseline: 7d}", "field 'spike.window': Field required"),
        ("{window: 1h, windw: 2h}", "field 'spike.windw': unknown key"),
        ("{window: .inf}", "field 'spike.window': inf: a duration must be a whole number"),
        ("{window: .nan}", "field 'spike.window': nan: a duration must be a whole number"),
        ("{window: 1h, baseline: [7d]}", "field 'spike.baseline': not a duration: ['7d']"),
    ],
)
def test_a_bad_spike_names_the_rule_and_the_field(
    tmp_path: Path, spike: str, expected: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - id: r1\n    terms: [x]\n    spike: {spike}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert f"{path}: rules[0] (id 'r1'): {expected}" in str(caught.value)


def test_a_spike_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: r1\n    terms: [x]\n    spike:\n      window: 90m\n")
    [rule] = load_rules(path)
    assert rule.spike is not None
    spike = rule.spike
    assert spike.window_seconds == 5400 and spike.baseline_seconds == 7 * 86400
    assert (spike.factor, spike.min_count, spike.baseline_windows) == (3.0, 5, 112)


def test_other_alerts_keep_their_wire_form_without_a_spike_field(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    [plain] = [a for a in engine.process(timeline()[0]) if a.rule_id == "tesla"]
    assert b'"spike"' not in plain.to_bytes()
    assert decode(Alert, plain.to_bytes()) == plain


def test_a_reload_that_takes_spike_away_drops_the_rules_counts(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    for s in timeline()[:5]:
        engine.process(s)
    spikes = engine.store.spikes
    assert spikes.rows("tesla-surge") > 0
    engine.rules_path.write_text(RULES.split("    spike:", maxsplit=1)[0], encoding="utf-8")
    engine.request_reload()
    assert engine.reload_if_due()
    assert spikes.rows("tesla-surge") == 0 and spikes.state("tesla-surge") is None


def test_newsmon_run_started_without_a_spike_rule_drops_its_counts(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, AlertStore(tmp_path / "rules.sqlite3"))
    for s in timeline()[:5]:
        engine.process(s)
    engine.close()
    (tmp_path / "rules.yaml").write_text(RULES.split("  - id: tesla-surge", maxsplit=1)[0])
    store = AlertStore(tmp_path / "rules.sqlite3")
    RulesEngine(tmp_path / "rules.yaml", RulesSettings(), store, Metrics(CollectorRegistry()))
    assert store.spikes.rows("tesla-surge") == 0
    store.close()
