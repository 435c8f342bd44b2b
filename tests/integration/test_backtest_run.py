"""History in `newsmon run`: backtest reads the store the run keeps and raises the alerts the
run raised; a reload that would flood is logged and counted by the running pipeline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import pick_free_port
from newsroom import SEED_RULES, Newsroom
from notifier_receiver import Receiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LATER = "/business/rotterdam"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def newsroom(shared_dir: Path) -> Iterator[Newsroom]:
    site = Newsroom(shared_dir)
    site.listed = site.listed - {LATER}  # released while the second run is up
    yield site
    site.close()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    return env | {"NEWSMON_METRICS__PORT": "0", "NEWSMON_EXTRACTION__WORKERS": "1", **extra}


def newsmon(command: str, folder: Path, *flags: str) -> list[str]:
    return [
        sys.executable, "-m", "pipeline.cli", command,
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--feeds", str(folder / "feeds.yaml"),
        "--state-dir", str(folder / "state"), *flags,
    ]  # fmt: skip


def backtest(folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        newsmon("backtest", folder, *flags), env=child_env(), capture_output=True, text=True,
        timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def wait_for_metric(port: int, line: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line in metrics_text(port):
            return True
        time.sleep(0.5)
    return False


def test_backtest_over_the_run_history_and_a_flooding_reload(
    newsroom: Newsroom, tmp_path: Path
) -> None:
    receiver = Receiver()
    newsroom.write_feeds_file(tmp_path, interval=1)
    rules = tmp_path / "rules.yaml"
    seed_rules = (ROOT / "configs" / "rules.yaml").read_text(encoding="utf-8")
    rules.write_text(seed_rules, encoding="utf-8")
    run_flags = (
        "--rules", str(rules), "--allow-private-networks", "--webhook", receiver.url(),
        "--webhook-secret", SECRET,
    )  # fmt: skip
    done = subprocess.run(
        newsmon("run", tmp_path, *run_flags, "--once"), env=child_env(), capture_output=True,
        text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    delivered = {r.json()["alert_id"] for r in receiver.requests}
    assert len(delivered) == len(SEED_RULES)

    # the same rules over the stored history raise the alerts the run raised, same ids
    jsonl = backtest(tmp_path, "--rules", str(rules), "--jsonl", "--since", "1h")
    raised = {line.split('"alert_id":"')[1].split('"')[0] for line in jsonl.stdout.splitlines()}
    assert raised == delivered
    assert "newsmon backtest: 3 stories from the history store" in jsonl.stderr

    # an edit against the rules in force: one rule dropped, one added
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        seed_rules.replace("  - id: unbundling\n", "  - id: museum\n    terms: [Belgrade]\n"
                           "  - id: unbundling-old\n    enabled: false\n", 1),
        encoding="utf-8",
    )  # fmt: skip
    report = backtest(tmp_path, "--rules", str(edited), "--compare", str(rules)).stdout
    assert re.search(r"\nmuseum +1 +- +\+1 +-0  \(new rule\)\n", report), report
    assert re.search(r"\nunbundling +- +1 +\+0 +-1  \(not in the tested file\)\n", report), report
    assert re.search(r"\ntesla +1 +1 +\+0 +-0\n", report), report
    assert "+ 2023-05-30  Belgrade museum honours Nikola Tesla" in report

    # the run goes on; its rules file is edited into a typo that matches nearly everything
    port = pick_free_port()
    env = child_env(
        NEWSMON_METRICS__PORT=str(port), NEWSMON_RULES__RELOAD_CHECK_SECONDS="0.5",
        NEWSMON_POLLER__MIN_INTERVAL_SECONDS="0.5", NEWSMON_RULES__FLOOD_FACTOR="1.5",
        NEWSMON_RULES__FLOOD_MIN_ALERTS="3",
    )  # fmt: skip
    log = tmp_path / "run.log"
    with log.open("wb") as err:
        run = subprocess.Popen(
            newsmon("run", tmp_path, *run_flags), env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            assert wait_for_metric(port, "newsmon_rules_loaded 3.0", 180), log.read_text()[-3000:]
            time.sleep(1.0)  # a distinct mtime for the edit
            rules.write_text(seed_rules.replace("terms: [unbundling]", "terms: [the]"), "utf-8")
            newsroom.release(LATER)  # a story comes through the rules stage after the edit
            flood = 'newsmon_rule_floods_total{kind="changed"} 1.0'
            assert wait_for_metric(port, flood, 180), log.read_text(errors="replace")[-3000:]
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert re.search(
        r"reloaded rule would raise far more alerts than before .*rule=unbundling kind=changed "
        r"alerts_now=[34] alerts_before=2 stories=[34] ",
        text,
    ), text[-3000:]
