"""`newsmon run --once`: the whole pipeline in one process, against loopback HTTP only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import standardwebhooks
from newsroom import SEED_RULES, Newsroom
from notifier_receiver import Receiver

from pipeline.history.store import AlertFilter, HistoryStore
from pipeline.models import Alert

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def newsmon_run(
    feeds: Path, state: Path, hook: str, *extra: str, rules: Path = ROOT / "configs" / "rules.yaml"
) -> list[str]:
    """`newsmon run` on loopback feeds, delivering to `hook` signed with SECRET."""
    return [
        sys.executable, "-m", "pipeline.cli", "run", "--allow-private-networks",
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(rules),
        "--feeds", str(feeds), "--state-dir", str(state),
        "--webhook", hook, "--webhook-secret", SECRET, *extra,
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env["NEWSMON_METRICS__PORT"] = "0"
    env["NEWSMON_EXTRACTION__WORKERS"] = "1"
    return env


def verified_alerts(receiver: Receiver) -> list[Alert]:
    """The delivered alerts, each signed with SECRET and read as the wire contract says."""
    webhook = standardwebhooks.Webhook(SECRET)
    alerts = []
    for request in receiver.requests:
        assert request.ok
        webhook.verify(request.body, request.headers)
        alert = Alert.model_validate_json(request.body)
        assert request.headers["webhook-id"] == alert.alert_id
        alerts.append(alert)
    return alerts


def test_run_once_delivers_exactly_the_three_seed_alerts_signed(
    newsroom: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    feeds = newsroom.write_feeds_file(tmp_path)
    command = newsmon_run(feeds, tmp_path / "state", receiver.url(), "--once")

    done = subprocess.run(
        command, env=child_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )

    assert done.returncode == 0, done.stderr[-3000:]
    alerts = verified_alerts(receiver)
    assert sorted(a.rule_id for a in alerts) == sorted(SEED_RULES)
    assert len({a.alert_id for a in alerts}) == 3
    assert "Tesla (the company)" in done.stdout and "**unbundling**" in done.stdout
    history = HistoryStore.in_dir(tmp_path / "state")  # what the console reads
    assert sorted(r.rule_id for r in history.alerts(AlertFilter()).rows) == sorted(SEED_RULES)
    assert history.counts()[0] == 4, "every enriched story is kept, not only alerted ones"
    history.close()

    again = subprocess.run(
        command, env=child_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(receiver.requests) == 3, "a second run delivered again"


def test_kill_9_mid_run_then_restart_loses_no_alert_and_repeats_none(
    newsroom: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.answer = lambda path, headers: (503, {"Retry-After": "1"})
    feeds = newsroom.write_feeds_file(tmp_path)
    state = tmp_path / "state"
    worker = subprocess.Popen(
        newsmon_run(feeds, state, receiver.url()), env=child_env(), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.2)
    assert receiver.requests, "no delivery attempt before the kill"
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    receiver.requests.clear()
    receiver.answer = lambda path, headers: (200, {})

    done = subprocess.run(
        newsmon_run(feeds, state, receiver.url(), "--once"), check=False, env=child_env(),
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    alerts = verified_alerts(receiver)
    assert sorted(a.rule_id for a in alerts) == sorted(SEED_RULES)


def test_demo_shows_the_seed_alerts_without_internet(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo"], check=False, env=child_env(),
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 alerts (qin-gang, tesla, unbundling)" in done.stderr
    assert "Nikola" not in done.stdout


def test_ctrl_c_stops_the_run_with_one_summary_line_and_no_traceback(
    newsroom: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    """A terminal's Ctrl-C reaches the whole process group, pool processes included:
    the parent alone owns the shutdown and says what it finished."""
    feeds = newsroom.write_feeds_file(tmp_path)
    env = child_env()
    env["NEWSMON_EXTRACTION__WORKERS"] = "2"  # a real process pool
    worker = subprocess.Popen(
        newsmon_run(feeds, tmp_path / "state", receiver.url()), env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.requests, "no alert delivered before Ctrl-C"
        os.killpg(worker.pid, signal.SIGINT)  # as the terminal does
        _, stderr = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

    assert worker.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    summary = [line for line in stderr.splitlines() if line.startswith("done: ")]
    assert len(summary) == 1, stderr[-3000:]
    assert "new stories" in summary[0] and "alerts" in summary[0]


def test_sighup_rereads_the_rules_and_the_run_goes_on(receiver: Receiver, tmp_path: Path) -> None:
    """`kill -HUP` re-reads the rules, as it does for `newsmon rules`; it used to end the run
    (SIGHUP's default action), and a quiet run never logged the reload."""
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - url: http://127.0.0.1:9/feed.xml\n    name: closed\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text((ROOT / "configs" / "rules.yaml").read_text())
    log = tmp_path / "run.log"
    command = newsmon_run(feeds, tmp_path / "state", receiver.url(), rules=rules)
    with log.open("wb") as err:
        worker = subprocess.Popen(
            command, env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        wait_logged(log, "feeds owned", worker)
        worker.send_signal(signal.SIGHUP)
        wait_logged(log, "rules reloaded", worker)
        assert worker.poll() is None, "SIGHUP ended the run"
        worker.terminate()
        assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def wait_logged(log: Path, text: str, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert worker.poll() is None, f"the run ended ({worker.returncode}) before {text!r}"
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged within 120 s")
