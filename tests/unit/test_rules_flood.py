"""The reload flood check: changed rules, old version against new, over the newest history."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from rules_stories import rule, story

from pipeline.config import Rule, RulesSettings
from pipeline.errors import PipelineError
from pipeline.history.sources import History, LocalHistory
from pipeline.history.store import HistoryStore
from pipeline.metrics import Metrics
from pipeline.rules.engine import RulesEngine
from pipeline.rules.flood import FloodCheck, changed_rules, floods, previous_checked
from pipeline.rules.store import MEMORY, AlertStore
from pipeline.runtime import log_fields

NOW = 1_800_000_000.0
SETTINGS = RulesSettings(flood_factor=5, flood_min_alerts=10)


def test_changed_rules_are_the_new_and_the_edited_ones() -> None:
    before = [rule("same", "Tesla"), rule("edited", "Rivian"), rule("gone", "Lucid")]
    after = [rule("same", "Tesla"), rule("edited", "Rivian", "Lucid"), rule("added", "Ford")]
    changed, previous = changed_rules(before, after)
    assert [r.id for r in changed] == ["edited", "added"]
    assert previous == [rule("edited", "Rivian")]


def test_a_spike_rule_is_no_flood_however_many_stories_it_matches() -> None:
    before = [rule("spiky", "Rivian")]
    after = [
        rule("spiky", "R*", spike={"window": "1h"}),
        rule("new-spiky", "Lucid", spike={"window": "1h"}),
    ]
    assert changed_rules(before, after) == ([], [])


@pytest.mark.parametrize(
    ("now", "before", "existed", "flood"),
    [
        (50, 10, True, True),  # 5x what it did
        (49, 10, True, False),  # under 5x
        (10, 0, True, True),  # from nothing to the minimum
        (9, 0, True, False),  # under the minimum, however steep
        (10, 2, True, True),  # 5x and the minimum
        (10, 3, True, False),
        (10, 0, False, True),  # a new rule: as if it had matched once
    ],
)
def test_a_flood_is_factor_times_what_it_did_and_the_minimum(
    now: int, before: int, existed: bool, flood: bool
) -> None:
    found = floods(
        (Counter({"r": now}), Counter({"r": before})), [rule("r", "x")],
        {"r"} if existed else set(), 100, SETTINGS,
    )  # fmt: skip
    assert bool(found) == flood
    if found:
        assert (found[0].would, found[0].did, found[0].new) == (now, before, not existed)


# -- over a history store ------------------------------------------------------------------

TEXTS = [f"Shares of the carmaker moved {n} percent as the market opened." for n in range(40)]
TESLA = [f"Tesla said deliveries rose {n} percent." for n in range(4)]


@pytest.fixture
def history(tmp_path: Path) -> HistoryStore:
    store = HistoryStore(tmp_path / "history.sqlite3")
    stories = [story(t, url=f"https://x.example/{i}") for i, t in enumerate(TEXTS + TESLA)]
    store.add(stories, [], now=NOW - 3600)
    return store


def check(store: HistoryStore, metrics: Metrics, **settings: object) -> FloodCheck:
    merged = SETTINGS.model_copy(update=settings)
    return FloodCheck(lambda _t: LocalHistory(store), merged, metrics, clock=lambda: NOW)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_typo_that_matches_everything_is_a_flood_and_is_logged(
    history: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    before = [rule("tesla", "Tesla"), rule("quiet", "Lucid")]
    after = [rule("tesla", "the"), rule("quiet", "Lucid", "Rivian")]
    with caplog.at_level(logging.WARNING, "pipeline.rules.flood"):
        found = check(history, metrics)(before, after)
    assert [(f.rule_id, f.would, f.did, f.stories) for f in found] == [("tesla", 40, 4, 44)]
    [record] = caplog.records
    assert record.getMessage() == "reloaded rule would raise far more alerts than before"
    fields = log_fields(record)
    assert (fields["rule"], fields["alerts_now"], fields["alerts_before"]) == ("tesla", 40, 4)
    assert sample(metrics, "newsmon_rule_floods_total", kind="changed") == 1
    assert sample(metrics, "newsmon_rule_flood_checks_total", outcome="flood") == 1


def test_an_edit_that_keeps_the_volume_is_not_a_flood(history: HistoryStore) -> None:
    metrics = Metrics()
    found = check(history, metrics)([rule("tesla", "Tesla")], [rule("tesla", "Tesla", "Rivian")])
    assert found == []
    assert sample(metrics, "newsmon_rule_flood_checks_total", outcome="ok") == 1
    assert sample(metrics, "newsmon_rule_floods_total", kind="changed") == 0


def test_nothing_changed_means_no_check(history: HistoryStore) -> None:
    metrics = Metrics()
    rules = [rule("tesla", "Tesla")]
    assert check(history, metrics)(rules, list(rules)) == []
    assert (
        sum(
            sample(metrics, "newsmon_rule_flood_checks_total", outcome=o)
            for o in ("ok", "flood", "partial", "no_history", "error")
        )
        == 0
    )


def test_only_stories_within_history_days_count(history: HistoryStore) -> None:
    metrics = Metrics()
    found = check(history, metrics, history_days=0.01)([], [rule("new", "the")])
    assert found == []  # the stories were stored an hour ago: older than 0.01 days
    assert sample(metrics, "newsmon_rule_flood_checks_total", outcome="no_history") == 1


def test_the_deadline_cuts_the_read_and_what_was_read_decides(history: HistoryStore) -> None:
    ticks = iter(range(1000))
    metrics = Metrics()
    flood_check = FloodCheck(
        lambda _t: LocalHistory(history),
        SETTINGS.model_copy(update={"flood_check_seconds": 14.5}),
        metrics,
        clock=lambda: NOW,
        monotonic=lambda: float(next(ticks)),
    )
    found = flood_check([], [rule("new", "the")])
    # tick 0 sets the deadline (14.5), tick 1 opens the history, ticks 2-14 read a story each
    assert [(f.would, f.stories) for f in found] == [(13, 13)]
    assert sample(metrics, "newsmon_rule_flood_checks_total", outcome="flood") == 1
    found = flood_check([], [rule("new", "Tesla")])
    assert found == []
    assert sample(metrics, "newsmon_rule_flood_checks_total", outcome="partial") == 1


def test_a_history_that_cannot_be_read_never_fails_the_reload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreachable(_timeout: float) -> History:
        raise PipelineError("no broker", reason="broker_unreachable")

    metrics = Metrics()
    with caplog.at_level(logging.WARNING, "pipeline.rules.flood"):
        assert FloodCheck(unreachable, SETTINGS, metrics)([], [rule("new", "the")]) == []
    assert sample(metrics, "newsmon_rule_flood_checks_total", outcome="error") == 1
    assert log_fields(caplog.records[0])["reason"] == "broker_unreachable"


def test_the_engine_runs_the_check_on_a_reload(history: HistoryStore, tmp_path: Path) -> None:
    """The reload path both transports take (`reload_if_due`), with `newsmon run`'s source."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("rules:\n  - id: tesla\n    terms: [Tesla]\n", encoding="utf-8")
    metrics = Metrics()
    engine = RulesEngine(rules_file, RulesSettings(), AlertStore(MEMORY), metrics)
    seen: list[tuple[list[Rule], list[Rule]]] = []
    flood_check = check(history, metrics)

    def on_reload(old: Sequence[Rule], new: Sequence[Rule]) -> None:
        seen.append((list(old), list(new)))
        flood_check(old, new)

    engine.on_reload = on_reload
    rules_file.write_text("rules:\n  - id: tesla\n    terms: [percent]\n", encoding="utf-8")
    engine.request_reload()
    assert engine.reload_if_due()
    assert [r.terms for r in seen[0][0]] == [("Tesla",)]
    assert sample(metrics, "newsmon_rule_floods_total", kind="changed") == 1
    rules_file.write_text("rules:\n  - id: tesla\n    terms: [Tesla\n", encoding="utf-8")
    engine.request_reload()
    assert not engine.reload_if_due()  # a file that does not load is no reload: no check
    assert len(seen) == 1


def test_a_check_given_only_the_old_rules_it_reads_finds_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.rules import flood

    monkeypatch.setattr(flood, "MAX_RULES", 2)
    kept = rule("same", "a")
    before = [kept, rule("gone", "b"), rule("c1", "c"), rule("c2", "d"), rule("c3", "e")]
    after = [kept, rule("c1", "cc"), rule("new", "n"), rule("c2", "dd"), rule("c3", "ee")]
    trimmed = previous_checked(before, after)
    assert [r.id for r in trimmed] == ["same", "c1"]  # checked: c1 and new (the first two)
    full, part = changed_rules(before, after), changed_rules(trimmed, after)
    assert [r.id for r in full[0][:2]] == [r.id for r in part[0][:2]] == ["c1", "new"]
    assert [r.id for r in full[1] if r.id in {"c1", "new"}] == [r.id for r in part[1]] == ["c1"]
