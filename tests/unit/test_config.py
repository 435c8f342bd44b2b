"""Configuration: shipped files load; broken ones fail naming file, entry and field."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import DEFAULTS_DIR, Config, load_config, parse_duration
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's NEWSMON_* variables must not leak into these cases."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("NEWSMON_"):
            monkeypatch.delenv(name)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "config": write(tmp_path, "newsmon.yaml", "kafka:\n  bootstrap_servers: 'k:9092'\n"),
        "feeds": write(tmp_path, "feeds.yaml", "feeds:\n  - url: https://example.org/rss\n"),
        "rules": write(tmp_path, "rules.yaml", "rules:\n  - id: tesla\n    terms: [Tesla]\n"),
    }


def load(files: dict[str, Path]) -> Config:
    return load_config(files["config"], files["feeds"], files["rules"])


def test_shipped_configs_pass_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["check-config", "--config", str(CONFIGS / "newsmon.yaml"),
         "--feeds", str(CONFIGS / "feeds.yaml"), "--rules", str(CONFIGS / "rules.yaml")]
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.startswith("ok:")


@pytest.mark.parametrize(
    ("which", "text", "expected"),
    [
        ("config", "kafka:\n  bootstrap_server: x\n", "field 'kafka.bootstrap_server': unknown key"),
        ("config", "http:\n  max_bytes: lots\n", "field 'http.max_bytes'"),
        ("config", "- a list\n", "expected a mapping"),
        ("config", "kafka: [unclosed\n", "not valid YAML"),
        ("feeds", "feeds:\n  - url: ftp://example.org/x\n", "feeds[0] (url 'ftp://example.org/x'): field 'url'"),
        ("feeds", "feeds:\n  - url: https://a/x\n    interval: soon\n", "feeds[0] (url 'https://a/x'): field 'interval'"),
        ("feeds", "feeds:\n  - url: https://a/x\n  - url: https://a/x\n", "duplicate feed"),
        ("rules", "rules:\n  - id: r1\n    terms: []\n", "rules[0] (id 'r1'): field 'terms'"),
        ("rules", "rules:\n  - id: r1\n    terms: ['  ']\n", "terms must not be empty"),
        ("rules", "rules:\n  - id: r1\n    terms: [x]\n    entity_types: [COMPANY]\n", "unknown entity label 'COMPANY'"),
        ("rules", "rules:\n  - id: r1\n    terms: [x]\n    colour: red\n", "rules[0] (id 'r1'): field 'colour': unknown key"),
        ("rules", "rules:\n  - id: r1\n    terms: [x]\n  - id: r1\n    terms: [y]\n", "duplicate rule id 'r1'"),
        ("rules", "rules:\n  - id: r1\n    terms: ['a*b']\n", "only allowed at the end"),
    ],
)  # fmt: skip
def test_broken_config_names_file_entry_and_field(
    files: dict[str, Path], which: str, text: str, expected: str
) -> None:
    files[which].write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(files)
    message = str(caught.value)
    assert str(files[which]) in message
    assert expected in message


def test_check_config_exits_non_zero_with_the_problem(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["rules"].write_text("rules:\n  - id: r1\n    terms: []\n", encoding="utf-8")
    args = ["--config", str(files["config"]), "--feeds", str(files["feeds"])]
    code = main(["check-config", *args, "--rules", str(files["rules"])])
    assert code == 2
    assert "rules[0] (id 'r1'): field 'terms'" in capsys.readouterr().err


def test_env_overrides_file_and_file_variant_reads_secret(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = write(tmp_path, "pw", "s3cret\n")
    monkeypatch.setenv("NEWSMON_KAFKA__BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("NEWSMON_KAFKA__SASL_PASSWORD_FILE", str(secret))
    config = load_config(files["config"], files["feeds"], files["rules"])
    kafka = config.settings.kafka
    assert kafka.bootstrap_servers == "broker:9093"
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == "s3cret"
    assert config.settings.masked_dump()["kafka"]["sasl_password"] == "**********"


def test_bad_env_value_names_the_variable(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSMON_HTTP__TIMEOUT_SECONDS", "-1")
    expected = re.escape("NEWSMON_HTTP__TIMEOUT_SECONDS: field 'http.timeout_seconds'")
    with pytest.raises(ConfigError, match=expected):
        load(files)


def test_unknown_notify_destination_is_an_error(files: dict[str, Path]) -> None:
    files["config"].write_text(
        "notifier:\n  destinations:\n    - {id: ops, type: webhook, url: 'https://h/x'}\n"
    )
    files["rules"].write_text("rules:\n  - id: r1\n    terms: [x]\n    notify: [slack]\n")
    with pytest.raises(ConfigError, match="unknown destination 'slack'"):
        load(files)


def test_cli_overrides_beat_env(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSMON_HTTP__ALLOW_PRIVATE_NETWORKS", "false")
    config = load_config(
        files["config"], files["feeds"], files["rules"],
        overrides={"http": {"allow_private_networks": True}},
    )  # fmt: skip
    assert config.settings.http.allow_private_networks is True
    assert config.settings.kafka.bootstrap_servers == "k:9092"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90", 90.0), ("15m", 900.0), ("1.5h", 5400.0), ("1d", 86400.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_setting_named_file_is_not_mistaken_for_a_secret_file(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """And a path from the environment is relative to the working directory."""
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(CONFIGS / "topics.yaml", tmp_path / "elsewhere" / "topics.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSMON_NLP__TOPICS_FILE", "elsewhere/topics.yaml")
    config = load_config(files["config"], files["feeds"], files["rules"])
    assert str(config.settings.nlp.topics_file) == "elsewhere/topics.yaml"


def test_webhooks_default_to_a_machine_pace_and_chat_to_one_message_a_second() -> None:
    from pipeline.config import Destination

    webhook = Destination.model_validate({"id": "w", "type": "webhook", "url": "https://h/x"})
    chat = Destination.model_validate({"id": "c", "type": "apprise", "url": "slack://a/b/c"})
    paced = Destination.model_validate(
        {"id": "p", "type": "webhook", "url": "https://h/x", "rate_per_second": 2}
    )
    assert (webhook.rate_per_second, webhook.burst) == (20.0, 20)
    assert (chat.rate_per_second, chat.burst) == (1.0, 1)
    assert (paced.rate_per_second, paced.burst) == (2.0, 20)


def test_a_path_in_newsmon_yaml_is_relative_to_newsmon_yaml(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "taxonomy").mkdir()
    write(tmp_path / "taxonomy", "topics.yaml", "topics: [{id: only, terms: [x]}]\n")
    files["config"].write_text("nlp:\n  topics_file: taxonomy/topics.yaml\n", encoding="utf-8")
    monkeypatch.chdir(CONFIGS)  # not where newsmon.yaml is
    config = load(files)
    assert config.settings.nlp.topics_file == tmp_path / "taxonomy" / "topics.yaml"
    assert [t.id for t in config.taxonomy.topics] == ["only"]


def test_the_taxonomy_is_validated_with_the_other_files(files: dict[str, Path]) -> None:
    topics = write(
        files["config"].parent, "topics.yaml", "topics: [{id: a, terms: [x], colour: red}]\n"
    )
    files["config"].write_text(f"nlp:\n  topics_file: {topics}\n", encoding="utf-8")
    files["rules"].write_text("rules:\n  - id: r1\n    terms: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(files)
    assert f"{topics}: topics[0] (id 'a'): field 'colour': unknown key" in caught.value.problems
    assert any("rules[0] (id 'r1'): field 'terms'" in p for p in caught.value.problems)


def test_without_configs_here_the_packaged_examples_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.config_path == DEFAULTS_DIR / "newsmon.yaml"
    assert config.settings.nlp.topics_file == DEFAULTS_DIR / "topics.yaml"
    assert len(config.feeds) > 0 and len(config.rules) > 0 and len(config.taxonomy.topics) >= 20


def test_a_configs_folder_here_wins_over_the_packaged_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", "rules.yaml", "rules:\n  - id: mine\n    terms: [x]\n")
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert [r.id for r in config.rules] == ["mine"]
    assert config.feeds_path == DEFAULTS_DIR / "feeds.yaml"


@pytest.mark.parametrize("name", ["newsmon.yaml", "feeds.yaml", "rules.yaml", "topics.yaml"])
def test_the_packaged_examples_are_the_repository_configs(name: str) -> None:
    """configs/ is what a checkout edits; the package ships the same files to installs."""
    assert (DEFAULTS_DIR / name).read_text() == (CONFIGS / name).read_text()


def test_feeds_import_outside_a_checkout_writes_configs_here_not_the_packaged_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    packaged = (DEFAULTS_DIR / "feeds.yaml").read_text()
    opml = ROOT / "tests" / "testdata" / "feeds" / "subscriptions.opml"
    monkeypatch.chdir(tmp_path)
    assert main(["feeds", "import", str(opml)]) == 0
    assert "feeds added to configs/feeds.yaml" in capsys.readouterr().out
    assert len(load_config(feeds_path=tmp_path / "configs" / "feeds.yaml").feeds) > 0
    assert (DEFAULTS_DIR / "feeds.yaml").read_text() == packaged


def test_the_extractor_takes_the_loaded_taxonomy_without_reading_a_file(tmp_path: Path) -> None:
    from pipeline.config import ExtractionSettings, NlpSettings
    from pipeline.extractor.enrich import Enricher

    config = load_config(CONFIGS / "newsmon.yaml", CONFIGS / "feeds.yaml", CONFIGS / "rules.yaml")
    nowhere = NlpSettings(topics_file=tmp_path / "gone.yaml")
    enricher = Enricher(nowhere, ExtractionSettings(), taxonomy=config.taxonomy, models={})
    assert enricher.taxonomy.ids == [t.id for t in config.taxonomy.topics]
