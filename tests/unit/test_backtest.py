"""`newsmon backtest`'s pure parts: the time range, the history read, the compare diff, the tallies."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rules_stories import rule, story

from pipeline.config import Rule, RulesSettings
from pipeline.errors import PipelineError
from pipeline.history.sources import LocalHistory
from pipeline.history.store import HistoryStore
from pipeline.history.timerange import TimeRange, TimeRangeError, parse_time_range
from pipeline.models import Alert, EnrichedStory, alert_id_for
from pipeline.rules.backtest import (
    Backtest,
    diff_alerts,
    raiser,
    write_report,
)
from pipeline.rules.backtest import tester_engine as engine_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 86400.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("since", "start", "end", "expected"),
    [
        (None, None, None, TimeRange(None, None)),
        ("7d", None, None, TimeRange(NOW - 7 * DAY, None)),
        ("36h", None, None, TimeRange(NOW - 36 * HOUR, None)),
        ("90m", None, None, TimeRange(NOW - 90 * 60, None)),
        (None, "2026-11-24", None, TimeRange(at("2026-11-24T00:00:00+00:00"), None)),
        (
            None, "2026-11-24T09:30", "2026-11-25T09:30Z",
            TimeRange(at("2026-11-24T09:30+00:00"), at("2026-11-25T09:30+00:00")),
        ),
        (None, "2026-11-24T10:30+01:00", None, TimeRange(at("2026-11-24T09:30+00:00"), None)),
        (None, "3d", "1d", TimeRange(NOW - 3 * DAY, NOW - DAY)),
        (None, None, "2026-11-30", TimeRange(None, at("2026-11-30T00:00+00:00"))),
    ],
)  # fmt: skip
def test_time_ranges(
    since: str | None, start: str | None, end: str | None, expected: TimeRange
) -> None:
    assert parse_time_range(since, start, end, NOW) == expected


@pytest.mark.parametrize(
    ("since", "start", "end", "message"),
    [
        ("7d", "2026-11-24", None, "not both"),
        ("7x", None, None, "--since '7x': not a duration"),
        ("0d", None, None, "must be positive"),
        (None, "yesterday", None, "--from 'yesterday': not a time"),
        (None, None, "2026-13-01", "--to '2026-13-01': not a time"),
        (None, "2026-11-25", "2026-11-24", "is not before --to"),
        (None, "2026-11-25", "2026-11-25", "is not before --to"),
        (None, "2027-01-01", None, "is in the future"),
    ],
)
def test_bad_time_ranges_say_what_is_wrong(
    since: str | None, start: str | None, end: str | None, message: str
) -> None:
    with pytest.raises(TimeRangeError, match=message) as caught:
        parse_time_range(since, start, end, NOW)
    assert caught.value.reason == "time_range"


# -- the history store read ----------------------------------------------------------------


def numbered(n: int, text: str = "") -> EnrichedStory:
    return story(text or f"story number {n}", title=f"title {n}", url=f"https://x.example/{n}")


def test_the_store_is_read_oldest_first_in_chunks_within_the_range(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    for batch, when in enumerate((100.0, 200.0, 300.0)):  # three stories stored at each time
        store.add([numbered(3 * batch + i) for i in range(3)], [], now=when)

    def titles(since: float, until: float, chunk: int) -> list[str]:
        return [
            story_title(p) for _, p in store.story_payloads(since, until, chunk)
        ]  # fmt: skip

    everything = [f"title {n}" for n in range(9)]
    for chunk in (1, 2, 4, 100):  # chunk edges inside a run of equal times lose nothing
        assert titles(0, 1000, chunk) == everything
    assert titles(200, 300, 2) == everything[3:6]
    assert store.count_stories(200, 300) == 3
    history = LocalHistory(store)
    assert [story_title(p) for p in history.newest(4).payloads] == everything[5:]
    assert history.read(150, None).size == 6


def story_title(payload: bytes) -> str:
    return EnrichedStory.model_validate_json(payload).title


def test_a_state_dir_without_history_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"no history at .*newsmon run") as caught:
        LocalHistory.open(tmp_path)
    assert caught.value.reason == "no_history"


# -- the compare diff ----------------------------------------------------------------------


def fake_alert(rule_id: str, story_id: str) -> Alert:
    seed = alerts_of([rule("tesla", "Tesla")], story("Tesla opened a plant."))[0]
    return seed.model_copy(update={"alert_id": alert_id_for(rule_id, story_id), "rule_id": rule_id})


def alerts_of(rules: list[Rule], one: EnrichedStory) -> list[Alert]:
    return raiser(engine_of(Path("rules.yaml"), rules, RulesSettings()))(one)


def test_the_diff_of_one_story_is_by_rule_and_story() -> None:
    tested = [fake_alert("a", "s1"), fake_alert("b", "s1")]
    compared = [fake_alert("b", "s1"), fake_alert("c", "s1")]
    changes = diff_alerts(tested, compared)
    assert [(c.kind, c.alert.rule_id) for c in changes] == [("added", "a"), ("removed", "c")]
    assert diff_alerts(tested, tested) == []
    assert [c.kind for c in diff_alerts([], compared)] == ["removed", "removed"]


STORIES = [
    story("Tesla opened a plant in Berlin.", title="Tesla in Berlin", url="https://x.example/1"),
    story("Rivian and Tesla cut prices on trucks.", title="Price cuts", url="https://x.example/2"),
    story("Rivian posted a loss for the quarter.", title="Rivian loss", url="https://x.example/3"),
    story("The harbour strike ended on Friday.", title="Strike over", url="https://x.example/4"),
]


def run_backtest(tested: list[Rule], compared: list[Rule] | None) -> Backtest:
    settings = RulesSettings()
    new = engine_of(Path("tested.yaml"), tested, settings)
    old = engine_of(Path("compared.yaml"), compared, settings) if compared is not None else None
    backtest = Backtest(
        raiser(new), new.compiled.rules, raiser(old) if old else None,
        old.compiled.rules if old else (),
    )  # fmt: skip
    for one in STORIES:
        backtest.add_payload(one.to_bytes())
    backtest.add_payload(b"{not json")
    return backtest


def test_compare_counts_what_each_rule_gains_and_loses() -> None:
    backtest = run_backtest(
        tested=[
            rule("tesla", "Tesla"),
            rule("ev-makers", "Tesla", "Rivian"),
            rule("new", "strike"),
        ],
        compared=[rule("tesla", "Tesla"), rule("ev-makers", "Rivian"), rule("gone", "plant")],
    )
    got = {
        o.rule_id: (o.tested, o.compared, o.alerts, o.before, o.added, o.removed)
        for o in backtest.outcomes.values()
    }
    assert got == {
        "tesla": (True, True, 2, 2, 0, 0),
        "ev-makers": (True, True, 3, 2, 1, 0),
        "new": (True, False, 1, 0, 1, 0),
        "gone": (False, True, 0, 1, 0, 1),
    }
    assert (backtest.stories, backtest.unreadable) == (4, 1)
    assert [s.title for s in backtest.outcomes["ev-makers"].added_samples] == ["Tesla in Berlin"]
    assert [s.title for s in backtest.outcomes["gone"].removed_samples] == ["Tesla in Berlin"]

    out = io.StringIO()
    write_report(backtest, "heading", out)
    report = out.getvalue()
    assert "ev-makers        3        2       +1       -0" in report
    assert "gone             -        1       +0       -1  (not in the tested file)" in report
    assert "new              1        -       +1       -0  (new rule)" in report
    assert "text: Tesla opened a **plant** in Berlin." in report


def test_without_compare_each_rule_shows_its_alerts_and_newest_headlines() -> None:
    backtest = run_backtest([rule("tesla", "Tesla"), rule("silent", "Lucid")], None)
    assert {o.rule_id: o.alerts for o in backtest.outcomes.values()} == {"tesla": 2, "silent": 0}
    assert [s.title for s in backtest.outcomes["tesla"].samples] == [
        "Tesla in Berlin",
        "Price cuts",
    ]
    out = io.StringIO()
    write_report(backtest, "heading", out)
    assert out.getvalue().splitlines()[2:] == [
        "rule     alerts",
        "tesla         2",
        "silent        0",
        "",
        "tesla (tesla)",
        "  newest:",
        "   2024-03-01  Price cuts  [example]",
        "      text: Rivian and **Tesla** cut prices on trucks.",
        "   2024-03-01  Tesla in Berlin  [example]",
        "      title: **Tesla** in Berlin",
    ]


def test_the_enriched_topic_is_made_to_keep_history_days() -> None:
    from pipeline.config import KafkaSettings
    from pipeline.corridor.kafka.clients import topic_specs

    settings = KafkaSettings()
    kept = {s.name: s.topic_configs.get("retention.ms") for s in topic_specs(settings, 3)}
    assert kept.pop(settings.topics.enriched) == str(3 * 86_400_000)
    assert set(kept.values()) == {None}


def test_the_command_names_a_bad_rules_file_a_bad_range_and_a_missing_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    state = ["--state-dir", str(tmp_path)]
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: tesla\n    terms: []\n", encoding="utf-8")
    assert main(["backtest", "--rules", str(bad), *state]) == 2
    assert f"{bad}: rules[0] (id 'tesla'): field 'terms'" in capsys.readouterr().err
    assert main(["backtest", "--since", "7d", "--from", "2026-11-01", *state]) == 1
    assert "newsmon: time_range: --since is a range of its own" in capsys.readouterr().err
    assert main(["backtest", "--compare", str(bad), *state]) == 2
    assert f"{bad}: rules[0]" in capsys.readouterr().err
    assert main(["backtest", *state]) == 1
    assert "newsmon: no_history: no history at" in capsys.readouterr().err


def test_prefetching_keeps_order_raises_the_readers_error_and_stops_when_closed() -> None:
    from pipeline.history.sources import prefetched

    payloads = [str(n).encode() for n in range(1234)]
    assert list(prefetched(iter(payloads), batch=100, depth=2)) == payloads

    def failing() -> Iterator[bytes]:
        yield b"one"
        raise PipelineError("broker gone", reason="broker_unreachable")

    reader = prefetched(failing(), batch=1)
    assert next(reader) == b"one"
    with pytest.raises(PipelineError, match="broker gone"):
        next(reader)

    handed: list[int] = []

    def endless() -> Iterator[bytes]:
        n = 0
        while True:
            handed.append(n)
            yield str(n).encode()
            n += 1

    reader = prefetched(endless(), batch=10, depth=2)
    assert next(reader) == b"0"
    reader.close()  # returns only once the thread stopped
    stopped_at = len(handed)
    assert stopped_at < 100
    assert len(handed) == stopped_at
