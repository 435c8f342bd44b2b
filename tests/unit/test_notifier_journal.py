from __future__ import annotations

import json
from pathlib import Path

import pytest
from notifier_alerts import make_alert

from pipeline.notifier import journal as journal_module
from pipeline.notifier.journal import DeliveryJournal
from pipeline.notifier.tasks import DeliveryTask


def task(n: int, destination: str = "ops", attempts: int = 0) -> DeliveryTask:
    alert = make_alert(n)
    return DeliveryTask(alert, alert.to_bytes(), destination, 100.0 + n, attempts, 200.0 + n, "")


def delivered(journal: DeliveryJournal, count: int) -> None:
    """Tasks 0..count-1 journalled, then done: 2 * count lines, none of them pending."""
    for n in range(count):
        journal.put(task(n))
        journal.done(task(n).key)


def test_pending_deliveries_survive_without_close(tmp_path: Path) -> None:
    path = tmp_path / "notifier" / "pending.jsonl"
    first = DeliveryJournal(path)
    assert first.open() == []
    first.put(task(1))
    first.put(task(2))
    first.put(task(2, attempts=3))  # a failed attempt updates it
    first.done(task(1).key)
    # Read before close(), as after the process was killed: every line is already written.
    second = DeliveryJournal(path)
    try:
        assert second.open() == [task(2, attempts=3)]
    finally:
        second.close()
        first.close()


def test_open_compacts_to_the_pending_ones(tmp_path: Path) -> None:
    path = tmp_path / "pending.jsonl"
    journal = DeliveryJournal(path)
    journal.open()
    delivered(journal, 10)
    journal.put(task(99))
    journal.close()
    assert len(path.read_text().splitlines()) == 21
    reopened = DeliveryJournal(path)
    assert [t.alert.alert_id for t in reopened.open()] == ["alert-99"]
    assert len(path.read_text().splitlines()) == 1
    assert task(99).key in reopened and len(reopened) == 1
    reopened.close()


def test_growing_journal_compacts_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "COMPACT_MIN_LINES", 10)
    path = tmp_path / "pending.jsonl"
    journal = DeliveryJournal(path)
    journal.open()
    delivered(journal, 30)
    journal.close()
    assert len(path.read_text().splitlines()) <= 11


def test_torn_and_damaged_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "pending.jsonl"
    journal = DeliveryJournal(path)
    journal.open()
    journal.put(task(1))
    journal.close()
    with path.open("a") as out:
        out.write(json.dumps({"op": "put", "key": "x", "alert": "{}"}) + "\n")
        out.write('{"op": "put", "key": "alert-2/ops", "destina')  # killed mid-write
    reopened = DeliveryJournal(path)
    assert [t.key for t in reopened.open()] == [task(1).key]
    reopened.close()
