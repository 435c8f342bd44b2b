"""scripts/setup-system.sh, run for real against a PATH of stand-in tools: silent when
everything is there, installs what is missing as root, else one line naming the packages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup-system.sh"
BASH = shutil.which("bash") or "/bin/bash"


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{BASH}\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """Only the tools named here exist; the script's own helpers are linked in."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("sed", "head"):
        real = shutil.which(tool)
        assert real is not None
        (folder / tool).symlink_to(real)
    stub(folder, "id", "echo 1000")
    return folder


def present(folder: Path, *tools: str, java: str = "17.0.2") -> None:
    for tool in tools:
        body = f"echo 'openjdk version \"{java}\" 2024-01-16' >&2" if tool == "java" else ":"
        stub(folder, tool, body)


def run(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT)], env={"PATH": str(folder)}, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip


def test_nothing_to_do_when_every_tool_is_there(bin_dir: Path) -> None:
    present(bin_dir, "java", "mvn", "promtool", "chromium")
    done = run(bin_dir)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize(
    ("tools", "java", "named"),
    [
        (("java", "mvn", "chromium"), "17.0.2", "promtool (package prometheus)"),
        (
            ("java", "mvn", "promtool", "chromium"),
            "11.0.22",
            "java (package openjdk-17-jre-headless)",
        ),
        (
            ("promtool", "chromium"),
            "17",
            "java (package openjdk-17-jre-headless), mvn (package maven)",
        ),
        (("java", "mvn", "promtool"), "17", "chromium (package chromium)"),
    ],
)
def test_without_root_it_stops_with_one_line_naming_the_packages(
    bin_dir: Path, tools: tuple[str, ...], java: str, named: str
) -> None:
    present(bin_dir, *tools, java=java)
    done = run(bin_dir)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert f"missing {named};" in done.stderr


def test_as_root_it_updates_then_installs_what_is_missing(bin_dir: Path, tmp_path: Path) -> None:
    present(bin_dir, "java", "mvn", "chromium")
    calls = tmp_path / "apt-calls"
    stub(bin_dir, "id", "echo 0")
    stub(
        bin_dir, "apt-get",
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" = install ]; then printf "#!{BASH}\\n" > {bin_dir}/promtool; '
        f"{shutil.which('chmod')} +x {bin_dir}/promtool; fi",
    )  # fmt: skip
    done = run(bin_dir)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends prometheus",
    ]


def test_a_failed_install_names_what_is_still_missing(bin_dir: Path) -> None:
    present(bin_dir, "java", "promtool", "chromium")
    stub(bin_dir, "id", "echo 0")
    stub(bin_dir, "apt-get", ":")
    done = run(bin_dir)
    assert done.returncode == 1
    assert "still missing after apt-get install: mvn (package maven)" in done.stderr
