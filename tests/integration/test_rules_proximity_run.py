"""`newsmon run --once` with proximity rules: the seed story through the whole pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from newsroom import Newsroom
from notifier_receiver import Receiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# "... win-win cooperation,” Qin Gang told Musk, according to a ministry statement."
# "China's foreign minister met with Tesla CEO Elon Musk on Tuesday and said strained
#  US-China relations require “mutual respect”, ..."
PROXIMITY_RULES = """\
rules:
  - id: qin-tells-musk
    terms: [Qin Gang]
    near: {terms: [Musk], within: 3}
  - id: qin-near-ukraine
    terms: [Qin Gang]
    near: {terms: [Ukraine], within: 3}
  - id: musk-mutual-respect
    terms: [Elon Musk]
    same_sentence: [mutual respect]
  - id: musk-russia
    terms: [Elon Musk]
    same_sentence: [Russia]
"""


@pytest.fixture
def newsroom(shared_dir: Path) -> Iterator[Newsroom]:
    site = Newsroom(shared_dir)
    yield site
    site.close()


def test_proximity_rules_fire_through_newsmon_run(newsroom: Newsroom, tmp_path: Path) -> None:
    receiver = Receiver()
    rules = tmp_path / "rules.yaml"
    rules.write_text(PROXIMITY_RULES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env |= {"NEWSMON_METRICS__PORT": "0", "NEWSMON_EXTRACTION__WORKERS": "1"}
    command = [
        sys.executable, "-m", "pipeline.cli", "run", "--once", "--allow-private-networks",
        "--config", str(ROOT / "configs" / "newsmon.yaml"), "--rules", str(rules),
        "--feeds", str(newsroom.write_feeds_file(tmp_path)), "--state-dir", str(tmp_path / "state"),
        "--webhook", receiver.url(), "--webhook-secret", SECRET,
    ]  # fmt: skip

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    alerts = [request.json() for request in receiver.requests]
    assert sorted(a["rule_id"] for a in alerts) == ["musk-mutual-respect", "qin-tells-musk"]
    [qin] = [a for a in alerts if a["rule_id"] == "qin-tells-musk"]
    assert "**Qin Gang** told Musk" in qin["matches"][0]["snippet"]
