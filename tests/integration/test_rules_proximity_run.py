"""`newsmon run --once` with proximity rules: the seed story through the whole pipeline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from newsroom import Newsroom
from notifier_receiver import Receiver
from proximity_scenario import check_alerts, write_rules
from test_run_local import child_env, newsmon_run

from pipeline.models import Alert, decode

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_proximity_rules_fire_through_newsmon_run(
    newsroom: Newsroom, receiver: Receiver, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path)
    feeds = newsroom.write_feeds_file(tmp_path)
    command = newsmon_run(feeds, tmp_path / "state", receiver.url(), "--once", rules=rules)

    done = subprocess.run(
        command, env=child_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )

    assert done.returncode == 0, done.stderr[-3000:]
    check_alerts([decode(Alert, request.body) for request in receiver.requests])
