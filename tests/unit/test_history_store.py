"""The history store: filters, keyset pages, free text, duplicates, incremental pruning."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from notifier_alerts import make_alert
from rules_stories import story

from pipeline.corridor.records import Message
from pipeline.history.feeder import HistoryStage, HistoryWriter
from pipeline.history.store import AlertFilter, Cursor, HistoryStore, fts_query
from pipeline.metrics import Metrics
from pipeline.models import Alert, AlertStory


def alert(
    n: int,
    *,
    rule: str = "tesla",
    severity: str = "high",
    source: str = "wire",
    title: str = "Tesla opens a plant",
    at: float = 1_700_000_000.0,
) -> Alert:
    base = make_alert(n)
    return base.model_copy(update={
        "rule_id": rule, "rule_name": rule, "severity": severity,
        "raised_at": datetime.fromtimestamp(at + n, tz=UTC),
        "story": AlertStory(id=f"story-{n}", url=f"https://x.example/{n}", title=title,
                            source=source, published=base.story.published),
    })  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.sqlite3")


def test_pages_are_newest_first_and_keyed_so_no_alert_is_skipped_or_repeated(
    store: HistoryStore,
) -> None:
    store.add([], [alert(n) for n in range(120)], now=0)
    seen: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = store.alerts(AlertFilter(), cursor, limit=50)
        seen += [r.alert_id for r in page.rows]
        if page.older is None:
            break
        cursor = Cursor.parse(page.older.token())
    assert seen == [f"alert-{n}" for n in reversed(range(120))]


def test_filters_combine_rule_severity_source_dates_and_words(store: HistoryStore) -> None:
    store.add([], [
        alert(1, rule="tesla", title="Tesla withdraws sedans"),
        alert(2, rule="tesla", severity="low", title="Tesla withdraws trucks"),
        alert(3, rule="qin", source="agency", title="Qin Gang meets Musk"),
        alert(4, rule="tesla", at=1_600_000_000.0, title="Tesla withdraws old sedans"),
    ], now=0)  # fmt: skip

    def ids(wanted: AlertFilter) -> list[str]:
        return [r.alert_id for r in store.alerts(wanted).rows]

    # newest first = last stored first (alert-4 was raised earlier but stored later)
    assert ids(AlertFilter(rule="tesla", severity="high")) == ["alert-4", "alert-1"]
    assert ids(AlertFilter(source="agency")) == ["alert-3"]
    # a prefix when asked for
    assert ids(AlertFilter(text="withdraws seda*")) == ["alert-4", "alert-1"]
    assert ids(AlertFilter(text="withdraws seda")) == []
    assert ids(AlertFilter(text="withdraws", rule="tesla", severity="low")) == ["alert-2"]
    assert ids(AlertFilter(text="meets", source="agency")) == ["alert-3"]
    assert ids(AlertFilter(text="meets", source="wire")) == []
    assert ids(AlertFilter(text="withdraws", since=1_650_000_000.0)) == ["alert-2", "alert-1"]
    assert ids(AlertFilter(text='" NEAR( OR *')) == []  # FTS syntax in a search box is just words


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('tesla "recall*') == '"tesla" "recall"*'
    assert fts_query('NEAR(a b) OR "x') == '"NEAR" "a" "b" "OR" "x"'
    assert fts_query("  ") == ""


def test_a_record_read_twice_is_stored_once(store: HistoryStore) -> None:
    s = story("Tesla text", title="Tesla")
    assert store.add([s], [alert(1)], now=0) == (1, 1)
    assert store.add([s], [alert(1)], now=0) == (0, 0)
    assert store.story(s.id) == s
    assert [a.alert_id for a in store.alerts_for_story("story-1")] == ["alert-1"]


def test_pruning_deletes_in_batches_and_keeps_what_is_recent(store: HistoryStore) -> None:
    store.add([], [alert(n, at=1000.0) for n in range(30)] + [alert(100, at=10_000.0)], now=0)
    first = store.prune(older_than=5000.0, batch=20)
    second = store.prune(older_than=5000.0, batch=20)
    assert (first.alerts, first.done, second.alerts, second.done) == (20, False, 10, True)
    assert [r.alert_id for r in store.alerts(AlertFilter()).rows] == ["alert-100"]
    assert [r.alert_id for r in store.alerts(AlertFilter(text="plant")).rows] == ["alert-100"]


def test_the_writer_counts_unreadable_records_and_the_stage_publishes_nothing(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    store = HistoryStore(tmp_path / "h.sqlite3")
    writer = HistoryWriter(
        store, metrics, 14, enriched="enriched", alerts="alerts", clock=lambda: 0.0
    )
    s = story("Tesla text", title="Tesla")
    messages = [
        Message("enriched", 0, 1, None, s.to_bytes()),
        Message("alerts", 0, 1, None, alert(1).to_bytes()),
        Message("alerts", 0, 2, None, b"not json"),
    ]
    assert HistoryStage(writer).handle_batch(messages) == [[], [], []]
    sample = metrics.registry.get_sample_value
    assert sample("newsmon_history_records_total", {"kind": "story", "outcome": "stored"}) == 1
    assert sample("newsmon_history_records_total", {"kind": "alert", "outcome": "stored"}) == 1
    assert sample("newsmon_history_records_total", {"kind": "story", "outcome": "unreadable"}) == 1


def test_rule_activity_and_menus_come_from_the_index(store: HistoryStore) -> None:
    day = 86400.0
    store.add([], [
        alert(1, rule="tesla", at=10 * day), alert(2, rule="tesla", at=12 * day),
        alert(3, rule="qin", source="agency", at=12 * day), alert(4, rule="old", at=1 * day),
    ], now=0)  # fmt: skip
    activity = store.rule_activity(since=10 * day, days=3)
    assert activity["tesla"] == (12 * day + 2, [1, 0, 1])
    assert activity["qin"] == (12 * day + 3, [0, 0, 1])
    assert activity["old"] == (1 * day + 4, [0, 0, 0])
    assert store.choices("rule_id") == ["old", "qin", "tesla"]
    assert store.choices("source") == ["agency", "wire"]
