from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pipeline.config import Config, Destination, load_config
from pipeline.errors import ConfigError
from pipeline.notifier.flags import (
    add_destination_options,
    apply_destination_flags,
    flag_destinations,
    with_destinations,
)

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="


def test_flags_become_numbered_destinations() -> None:
    found = flag_destinations(
        ["https://a.test/hook", "http://127.0.0.1:9/h"], [SECRET, "raw"], ["slack://T/B/C"]
    )
    assert [(d.id, d.type) for d in found] == [
        ("webhook-1", "webhook"),
        ("webhook-2", "webhook"),
        ("apprise-1", "apprise"),
    ]
    assert found[1].secret is not None and found[1].secret.get_secret_value() == "raw"
    assert found[2].url.get_secret_value() == "slack://T/B/C"


@pytest.mark.parametrize(
    ("webhooks", "secrets", "apprise", "message"),
    [
        (["https://a.test/h"], [], [], "one per --webhook"),
        ([], ["s"], [], "one per --webhook"),
        (["ftp://a.test/h"], ["s"], [], "--webhook (webhook-1): a webhook url must be http"),
        (["https://a.test/h"], ["whsec_@@"], [], "--webhook (webhook-1): webhook secret"),
    ],
)
def test_bad_flags_name_the_flag(
    webhooks: list[str], secrets: list[str], apprise: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        flag_destinations(webhooks, secrets, apprise)
    assert message in str(caught.value)


def configured(tmp_path: Path, destinations: list[dict[str, str]]) -> Path:
    path = tmp_path / "newsmon.yaml"
    path.write_text(json.dumps({"notifier": {"destinations": destinations}}))
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    return path


def load(tmp_path: Path, destinations: list[dict[str, str]]) -> Config:
    path = configured(tmp_path, destinations)
    return load_config(path, tmp_path / "feeds.yaml", tmp_path / "rules.yaml")


def test_flag_destinations_are_added_to_the_configured_ones(tmp_path: Path) -> None:
    config = load(tmp_path, [{"id": "ops", "type": "apprise", "url": "slack://T/B/C"}])
    parser = argparse.ArgumentParser()
    add_destination_options(parser)
    args = parser.parse_args(
        ["--webhook", "https://a.test/h", "--webhook-secret", SECRET, "--apprise", "discord://1/2"]
    )
    updated = apply_destination_flags(args, config)
    ids = [d.id for d in updated.settings.notifier.destinations]
    assert ids == ["ops", "webhook-1", "apprise-1"]
    assert [d.id for d in config.settings.notifier.destinations] == ["ops"]  # not mutated


def test_id_clash_is_an_error(tmp_path: Path) -> None:
    config = load(tmp_path, [{"id": "apprise-1", "type": "apprise", "url": "slack://T/B/C"}])
    extra = [Destination(id="apprise-1", type="apprise", url="discord://1/2")]
    with pytest.raises(ConfigError, match="apprise-1"):
        with_destinations(config, extra)


def test_destinations_from_the_environment_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = [{"id": "hook", "type": "webhook", "url": "https://a.test/h", "secret": SECRET}]
    monkeypatch.setenv("NEWSMON_NOTIFIER__DESTINATIONS", json.dumps(value))
    config = load(tmp_path, [])
    (hook,) = config.settings.notifier.destinations
    assert (hook.id, hook.type, hook.url.get_secret_value()) == (
        "hook",
        "webhook",
        "https://a.test/h",
    )
