"""The proximity scenario that both transports run: these rules over the seed story, these alerts.

test_rules_proximity_run.py runs it through `newsmon run` (the whole pipeline, the seed
site on loopback HTTP) and test_rules_proximity_kafka.py through the `newsmon rules`
worker on a real broker; one copy here, so the two cannot drift apart.

The seed story says: "... win-win cooperation," Qin Gang told Musk, according to a
ministry statement. And: China's foreign minister met with Tesla CEO Elon Musk on
Tuesday and said strained US-China relations require "mutual respect", ...
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.models import Alert

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
  - id: musk-mutual-respect-in-text
    terms: [{term: Elon Musk, in: [text]}]
    same_sentence: [mutual respect]
  - id: musk-russia
    terms: [Elon Musk]
    same_sentence: [Russia]
"""
EXPECTED = ["musk-mutual-respect", "musk-mutual-respect-in-text", "qin-tells-musk"]
"""Musk and Ukraine are not within three words of Qin Gang, nor Russia in Musk's sentence."""


def write_rules(folder: Path) -> Path:
    path = folder / "rules.yaml"
    path.write_text(PROXIMITY_RULES, encoding="utf-8")
    return path


def check_alerts(alerts: Sequence[Alert]) -> None:
    """Exactly the expected rules fired, once each, and the proximity snippet shows the pair."""
    assert sorted(a.rule_id for a in alerts) == EXPECTED
    [qin] = [a for a in alerts if a.rule_id == "qin-tells-musk"]
    assert "**Qin Gang** told Musk" in qin.matches[0].snippet
