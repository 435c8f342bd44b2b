"""`newsmon check-config` validates the topic taxonomy and the NER models with the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _config_file(tmp_path: Path, topics: Path, models: str) -> Path:
    path = tmp_path / "newsmon.yaml"
    path.write_text(f"nlp:\n  topics_file: {topics}\n  models: {models}\n", encoding="utf-8")
    return path


def _check(config: Path) -> int:
    feeds, rules = ROOT / "configs" / "feeds.yaml", ROOT / "configs" / "rules.yaml"
    return main(
        ["check-config", "--config", str(config), "--feeds", str(feeds), "--rules", str(rules)]
    )


def test_the_shipped_configuration_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, ROOT / "configs" / "topics.yaml", "{en: en_core_web_sm}")
    assert _check(config) == 0, capsys.readouterr().err


def test_taxonomy_and_model_problems_are_reported_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text("topics: [{id: energy, terms: [oil], entity_labels: {BRAND: 1}}]\n")
    config = _config_file(tmp_path, topics, "{en: en_core_web_sm, de: de_core_news_zz}")
    assert _check(config) == 2
    err = capsys.readouterr().err
    assert f"{topics}: topics[0] (id 'energy'): field 'entity_labels': unknown entity label" in err
    assert "nlp.models.de: spaCy model 'de_core_news_zz' is not installed" in err


def test_the_extractor_commands_are_registered() -> None:
    parser = build_parser()
    assert parser.parse_args(["extractor"]).func.__name__ == "cmd_extractor"
    args = parser.parse_args(["enrich", "--batch-size", "4"])
    assert (args.func.__name__, args.batch_size) == ("cmd_enrich", 4)
