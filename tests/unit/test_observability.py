"""Prometheus config and alert rules pass promtool; the dashboard queries metrics we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "newsmon.json"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: run scripts/setup-system.sh (make test does)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False)


def exported_metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_scrape_config_is_valid(tmp_path: Path) -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/", ""))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_scrape_config_covers_every_worker_on_the_metrics_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    targets = {
        sd["names"][0]: sd["port"]
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    for worker in ("poller", "extractor", "rules", "notifier"):
        env = compose["services"][worker]["environment"]
        assert targets[worker] == int(env["NEWSMON_METRICS__PORT"]), worker


def test_alert_rules_query_exported_metrics() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    used = set(re.findall(r"\bnewsmon_[a-z_]+", text))
    assert used and used <= exported_metric_names(), used - exported_metric_names()


def test_dashboard_loads_and_every_panel_queries_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_metric_names()
    assert dashboard["panels"], "dashboard has no panels"
    for panel in dashboard["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, f"panel {panel['title']!r} has no query"
        for expr in exprs:
            names = set(re.findall(r"\bnewsmon_[a-z_]+", expr))
            assert names, f"panel {panel['title']!r}: {expr!r} names no newsmon metric"
            assert names <= exported, f"panel {panel['title']!r}: unknown {names - exported}"


def test_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(
        t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]
    )
    for metric in ("newsmon_records_total", "newsmon_consumer_lag", "newsmon_end_to_end_seconds_bucket",
                   "newsmon_feeds_in_error", "newsmon_alerts_total", "newsmon_deliveries_total",
                   "newsmon_stage_errors_total"):  # fmt: skip
        assert metric in exprs, metric
