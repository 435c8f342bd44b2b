"""An installed `newsmon` works from any directory: the example configs and the default
taxonomy come from the package, and paths in newsmon.yaml are relative to newsmon.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from newsroom import SEED_RULES, Newsroom

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NEWSMON = Path(sys.executable).with_name("newsmon")  # the console script pip installed


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout, with no configs/ folder."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert not (folder / "configs").exists()
    return folder


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env["NEWSMON_METRICS__PORT"] = "0"
    env["NEWSMON_EXTRACTION__WORKERS"] = "1"
    return env


def newsmon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NEWSMON), *args], env=child_env(), capture_output=True, text=True, timeout=300,
        cwd=cwd, check=False,
    )  # fmt: skip


def test_run_once_from_another_directory_uses_the_packaged_taxonomy(
    newsroom: Newsroom, elsewhere: Path
) -> None:
    feeds = newsroom.write_feeds_file(elsewhere)
    rules = shutil.copy(ROOT / "configs" / "rules.yaml", elsewhere / "my-rules.yaml")

    done = newsmon(
        "run", "--once", "--allow-private-networks", "--feeds", str(feeds), "--rules", str(rules),
        "--state-dir", "state", cwd=elsewhere,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(SEED_RULES)} alerts, 0 dead letters" in done.stderr, done.stderr[-3000:]
    assert "Tesla (the company)" in done.stdout
    assert (elsewhere / "state").is_dir()


def test_check_config_from_another_directory_names_the_packaged_files(elsewhere: Path) -> None:
    done = newsmon("check-config", cwd=elsewhere)

    assert done.returncode == 0, done.stderr
    defaults = ROOT / "pipeline" / "config" / "defaults"
    assert done.stdout.startswith(f"ok: {defaults / 'newsmon.yaml'}")
    assert f"{defaults / 'topics.yaml'} (" in done.stdout


def test_match_from_another_directory_tests_the_packaged_rules(elsewhere: Path) -> None:
    done = subprocess.run(
        [str(NEWSMON), "match"], input="", env=child_env(), capture_output=True, text=True,
        timeout=120, cwd=elsewhere, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert f"0 alerts, {len(SEED_RULES)} rules" in done.stderr


def test_a_config_names_its_taxonomy_relative_to_itself(tmp_path: Path, elsewhere: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "newsmon.yaml").write_text("nlp:\n  topics_file: taxonomy/topics.yaml\n")
    (site / "taxonomy").mkdir()
    (site / "taxonomy" / "topics.yaml").write_text("topics: [{id: only, terms: [x]}]\n")

    done = newsmon("check-config", "--config", str(site / "newsmon.yaml"), cwd=elsewhere)

    assert done.returncode == 0, done.stderr
    assert f"{site / 'taxonomy' / 'topics.yaml'} (1 topics)" in done.stdout


@pytest.mark.slow
def test_the_wheel_ships_the_defaults_and_runs_from_anywhere(tmp_path: Path) -> None:
    """Built and installed as pip would (not the editable checkout), then run elsewhere."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path / "wheel"), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("newsmon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("newsmon", "feeds", "rules", "topics"):
        assert f"pipeline/config/defaults/{name}.yaml" in names
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]

    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "check-config"], cwd=tmp_path, check=False,
        env={**child_env(), "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"ok: {site / 'pipeline' / 'config' / 'defaults'}")
