"""The delivery ledger: an alert read again is not sent again, across restarts too."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from notifier_alerts import FAST, Scripted, down, make_alert

from pipeline.cli import main
from pipeline.config import Destination, NotifierSettings
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.notifier.adapters import Adapter
from pipeline.notifier.delivered import DeliveredLedger, open_ledger
from pipeline.notifier.dispatch import CLAIMED_RETRY_SECONDS, Dispatcher
from pipeline.notifier.tasks import Delivered, Later

NOW = time.time()  # a ledger forgets by the wall clock when it is opened
DAY = 86_400.0


def dispatcher_over(
    ledger: DeliveredLedger | None, adapters: dict[str, Adapter], metrics: Metrics | None = None
) -> Dispatcher:
    destinations = [
        Destination.model_validate({"id": d, "type": "apprise", "url": "json://x", **FAST})
        for d in adapters
    ]
    return Dispatcher(
        destinations, NotifierSettings(), metrics or Metrics(), clock=lambda: NOW,
        rng=random.Random(1), adapters=adapters, ledger=ledger,
    )  # fmt: skip


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def deliver_once(dispatcher: Dispatcher, alert: Alert) -> list[object]:
    return [dispatcher.attempt(task, NOW + 5) for task in dispatcher.tasks_for(alert)]


def test_the_ledger_remembers_across_reopening_and_forgets_after_retention(
    tmp_path: Path,
) -> None:
    path = tmp_path / "delivered.sqlite3"
    ledger = DeliveredLedger(path, retention=DAY)
    ledger.record("alert-old", "ops", NOW - 2 * DAY)
    ledger.record("alert-new", "ops", NOW)
    assert ledger.has("alert-old", "ops") and ledger.has("alert-new", "ops")
    assert not ledger.has("alert-new", "siem")
    ledger.close()
    reopened = DeliveredLedger(path, retention=DAY)  # opening forgets what is past retention
    assert reopened.has("alert-new", "ops")
    assert not reopened.has("alert-old", "ops")
    assert reopened.prune(NOW + 2 * DAY) == 1
    assert len(reopened) == 0
    reopened.close()


def test_an_alert_read_again_is_not_sent_again_even_after_a_restart(tmp_path: Path) -> None:
    metrics, ops, siem = Metrics(), Scripted(), Scripted()
    ledger = open_ledger(tmp_path, NotifierSettings())
    dispatcher = dispatcher_over(ledger, {"ops": ops, "siem": siem}, metrics)
    first = deliver_once(dispatcher, make_alert(1))
    again = deliver_once(dispatcher, make_alert(1))
    assert all(isinstance(o, Delivered) for o in first + again)
    assert ops.sent == siem.sent == ["alert-1"]
    assert sample(metrics, "newsmon_deliveries_total", destination="ops", outcome="delivered") == 1
    assert (
        sample(metrics, "newsmon_deliveries_total", destination="ops", outcome="already_delivered")
        == 1
    )
    dispatcher.close()  # closes the ledger too

    restarted = dispatcher_over(open_ledger(tmp_path, NotifierSettings()), {"ops": ops})
    deliver_once(restarted, make_alert(1))
    deliver_once(restarted, make_alert(2))
    assert ops.sent == ["alert-1", "alert-2"]
    restarted.close()


def test_a_failed_delivery_is_not_remembered(tmp_path: Path) -> None:
    ops = Scripted([down()])
    dispatcher = dispatcher_over(open_ledger(tmp_path, NotifierSettings()), {"ops": ops})
    (failed,) = deliver_once(dispatcher, make_alert(1))
    assert isinstance(failed, Later) and failed.attempted
    assert dispatcher.ledger is not None and not dispatcher.ledger.has("alert-1", "ops")
    dispatcher.close()


class Held:
    """A destination that holds the first delivery until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.sent: list[str] = []

    def deliver(self, alert: Alert) -> None:
        self.sent.append(alert.alert_id)
        self.entered.set()
        self.release.wait(10)

    def close(self) -> None:
        pass


def test_two_attempts_at_one_delivery_never_run_at_once(tmp_path: Path) -> None:
    """The alerts loop and the retry loop of one worker may both hold the same delivery."""
    held = Held()
    dispatcher = dispatcher_over(open_ledger(tmp_path, NotifierSettings()), {"ops": held})
    (task,) = dispatcher.tasks_for(make_alert(1))
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(dispatcher.attempt, task, NOW + 5)
        assert held.entered.wait(5)
        second = dispatcher.attempt(task, NOW + 5)
        assert isinstance(second, Later)
        assert (second.attempted, second.reason) == (False, "in_progress")
        assert second.task.not_before == NOW + CLAIMED_RETRY_SECONDS
        held.release.set()
        assert isinstance(first.result(timeout=10), Delivered)
    assert isinstance(dispatcher.attempt(second.task, NOW + 5), Delivered)
    assert held.sent == ["alert-1"]
    dispatcher.close()


def test_a_broken_ledger_costs_only_the_protection(tmp_path: Path) -> None:
    metrics, ops = Metrics(), Scripted()
    ledger = open_ledger(tmp_path, NotifierSettings())
    dispatcher = dispatcher_over(ledger, {"ops": ops}, metrics)
    ledger.close()  # every read and write now fails
    with pytest.raises(Retryable):
        ledger.has("alert-1", "ops")
    outcomes = deliver_once(dispatcher, make_alert(1)) + deliver_once(dispatcher, make_alert(1))
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert ops.sent == ["alert-1", "alert-1"]  # at least once, as without a ledger
    assert sample(metrics, "newsmon_stage_errors_total", stage="notifier", reason="state") == 4


def test_without_a_ledger_every_attempt_sends() -> None:
    ops = Scripted()
    dispatcher = dispatcher_over(None, {"ops": ops})
    deliver_once(dispatcher, make_alert(1))
    deliver_once(dispatcher, make_alert(1))
    assert ops.sent == ["alert-1", "alert-1"]


def test_a_ledger_that_cannot_be_used_says_so_as_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(Retryable) as opening:
        DeliveredLedger(tmp_path / "not-a-dir" / "delivered.sqlite3", retention=DAY)
    assert opening.value.reason == "state"
    ledger = DeliveredLedger(tmp_path / "delivered.sqlite3", retention=DAY)
    ledger.close()
    for use in (
        lambda: ledger.has("alert-1", "ops"),
        lambda: ledger.record("alert-1", "ops", NOW),
        lambda: ledger.prune(NOW),
        lambda: len(ledger),
    ):
        with pytest.raises(Retryable):
            use()


def test_newsmon_notifier_stops_at_start_without_a_writable_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "newsmon.yaml").write_text("metrics:\n  enabled: false\n")
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    (tmp_path / "a-file").write_text("")
    code = main(
        ["notifier", "--config", str(tmp_path / "newsmon.yaml"),
         "--feeds", str(tmp_path / "feeds.yaml"), "--rules", str(tmp_path / "rules.yaml"),
         "--state-dir", str(tmp_path / "a-file"),
         "--webhook", "http://127.0.0.1:9/hook", "--webhook-secret", "s3cret"]
    )  # fmt: skip
    assert code == 1
    assert "newsmon: state: delivery ledger" in capsys.readouterr().err
