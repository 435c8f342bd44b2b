"""Docker does not run here, so the compose file and Dockerfile are checked against the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from settings_env import is_setting

from pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
NEWSMON_SERVICES = {
    name: spec
    for name, spec in COMPOSE["services"].items()
    if spec.get("image") == "newsmon:latest"
}
WORKERS = ("poller", "extractor", "rules", "notifier")


def test_every_worker_has_a_service() -> None:
    commands = {spec["command"][0] for spec in NEWSMON_SERVICES.values()}
    assert set(WORKERS) <= commands
    assert "topics" in commands


@pytest.mark.parametrize("service", sorted(NEWSMON_SERVICES))
def test_service_command_exists_in_the_cli(service: str) -> None:
    command = NEWSMON_SERVICES[service]["command"]
    try:
        args = build_parser().parse_args(command)
    except SystemExit as exc:
        pytest.fail(
            f"service {service}: `newsmon {' '.join(command)}` is not a valid command ({exc})"
        )
    assert callable(args.func)


@pytest.mark.parametrize("service", sorted(NEWSMON_SERVICES))
def test_service_environment_names_real_settings(service: str) -> None:
    env = NEWSMON_SERVICES[service].get("environment", {})
    unknown = [name for name in env if not is_setting(name)]
    assert unknown == [], f"service {service}: not settings: {unknown}"


def test_env_example_and_dockerfile_name_real_settings() -> None:
    text = (ROOT / ".env.example").read_text() + (ROOT / "deploy" / "Dockerfile").read_text()
    names = set(re.findall(r"\b(NEWSMON_[A-Z_]+)=", text))
    assert names, "no NEWSMON_ variables found"
    assert sorted(n for n in names if not is_setting(n)) == []


def test_is_setting_rejects_typos() -> None:
    assert is_setting("NEWSMON_KAFKA__BOOTSTRAP_SERVERS")
    assert is_setting("NEWSMON_KAFKA__SASL_PASSWORD_FILE")
    assert not is_setting("NEWSMON_KAFKA__BOOTSTRAP_SERVER")
    assert not is_setting("NEWSMON_KAFKA")


def test_workers_with_state_mount_a_volume() -> None:
    for name in ("poller", "rules", "notifier"):
        spec = NEWSMON_SERVICES[name]
        state_dir = spec["command"][spec["command"].index("--state-dir") + 1]
        assert any(v == state_dir or v.endswith(":" + state_dir) for v in spec["volumes"]), name


def test_replicas_of_rules_and_notifier_each_get_their_own_cache() -> None:
    """Their state dir is a cache of the changelog per owned partition: a named volume
    would be one file shared (and wiped at start-up) by every replica."""
    for name in ("rules", "notifier"):
        spec = NEWSMON_SERVICES[name]
        state_dir = spec["command"][spec["command"].index("--state-dir") + 1]
        assert state_dir in spec["volumes"], name
        assert not any(v.endswith(":" + state_dir) for v in spec["volumes"]), name


def config_mounts(service: str) -> list[tuple[str, str, str]]:
    """(host, container, mode) of the service's bind mounts of the configs directory."""
    found = []
    for volume in NEWSMON_SERVICES[service].get("volumes", []):
        host, _, rest = volume.partition(":")
        target, _, mode = rest.partition(":")
        if host.startswith("./configs"):
            found.append((host, target, mode or "rw"))
    return found


def test_the_console_saves_rules_into_the_configs_every_worker_reads() -> None:
    """A rule saved in the console reaches the rules worker only if both see one directory;
    mounted as a directory, the rename of the save shows through (a file mount would not)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.M)[-1]  # the runtime stage's
    configs = f"{workdir}/configs"  # where `configs/rules.yaml` is found by default
    assert config_mounts("console") == [("./configs", configs, "rw")]
    for name in sorted(NEWSMON_SERVICES):
        if name != "console":
            assert config_mounts(name) == [("./configs", configs, "ro")], name
    for name in ("rules", "console"):
        assert "--rules" not in NEWSMON_SERVICES[name]["command"], name


@pytest.mark.parametrize("service", WORKERS)
def test_every_worker_can_be_scaled(service: str) -> None:
    spec = NEWSMON_SERVICES[service]
    assert "container_name" not in spec and "ports" not in spec


def test_workers_restart_and_have_a_health_check_on_the_metrics_port() -> None:
    for name in WORKERS:
        spec = NEWSMON_SERVICES[name]
        assert spec["restart"] == "unless-stopped", name
        probe = " ".join(spec["healthcheck"]["test"])
        assert f":{spec['environment']['NEWSMON_METRICS__PORT']}/healthz" in probe, name


def test_workers_get_time_to_finish_what_they_hold_on_sigterm() -> None:
    for name in WORKERS:
        grace = NEWSMON_SERVICES[name]["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) >= 30, name


def test_extractor_can_be_scaled() -> None:
    spec = NEWSMON_SERVICES["extractor"]
    assert "container_name" not in spec and "ports" not in spec


def test_the_console_is_a_service_off_by_default_scraped_and_behind_a_login() -> None:
    spec = NEWSMON_SERVICES["console"]
    assert spec["profiles"] == ["console"], "the console starts only when asked for"
    assert spec["command"][:3] == ["console", "--source", "kafka"]
    bind = spec["command"][spec["command"].index("--bind") + 1]
    assert not bind.startswith("127."), "in a container the console listens beyond loopback"
    assert all(p.startswith("127.0.0.1:") for p in spec["ports"]), "published on loopback only"
    probe = " ".join(spec["healthcheck"]["test"])
    assert f":{spec['environment']['NEWSMON_METRICS__PORT']}/healthz" in probe
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["newsmon-console"]["dns_sd_configs"][0]["names"] == ["console"]
    assert "NEWSMON_CONSOLE__PASSWORD=" in (ROOT / ".env.example").read_text()
