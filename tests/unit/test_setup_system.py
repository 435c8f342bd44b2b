"""scripts/setup-system.sh, run for real against a PATH of stand-in tools: silent when
everything is there, installs what is missing as root, else one line naming the packages;
then the chart tools (scripts/install-chart-tools.sh), once."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup-system.sh"
CHART_TOOLS = ROOT / "scripts" / "install-chart-tools.sh"
APT_TOOLS = ("java", "mvn", "promtool", "chromium", "npm", "node")
SCHEMA_PACKAGES = ("keda", "prometheus-operator")
BASH = shutil.which("bash") or "/bin/bash"


def script_setting(pattern: str, script: Path) -> str:
    """The value a shell script sets, read by `pattern` (one group); the script must set it."""
    found = re.search(pattern, script.read_text(), re.MULTILINE)
    assert found is not None, f"{script.name}: nothing matches {pattern}"
    return found.group(1)


HELM_VERSION = script_setting(r"^HELM_VERSION=(\S+)", CHART_TOOLS)


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{BASH}\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """Only the tools named here exist; the script's own helpers are linked in."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("sed", "head", "dirname", "mkdir", "mktemp", "mv", "rm"):
        real = shutil.which(tool)
        assert real is not None
        (folder / tool).symlink_to(real)
    stub(folder, "id", "echo 1000")
    return folder


def present(folder: Path, *tools: str, java: str = "17.0.2") -> None:
    for tool in tools:
        body = f"echo 'openjdk version \"{java}\" 2024-01-16' >&2" if tool == "java" else ":"
        stub(folder, tool, body)


@pytest.fixture
def chart_tools(tmp_path: Path) -> Path:
    """A tools folder where helm and the schema packages are already installed."""
    folder = tmp_path / "chart-tools"
    helm = folder / f"helm-{HELM_VERSION}" / "helm"
    helm.parent.mkdir(parents=True)
    stub(helm.parent, "helm", ":")
    for package in SCHEMA_PACKAGES:
        installed = folder / "node_modules" / "@kubernetes-models" / package
        installed.mkdir(parents=True)
        (installed / "package.json").write_text("{}")
    return folder


def run(
    folder: Path, chart_tools: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    tools = {"NEWSMON_CHART_TOOLS": str(chart_tools)} if chart_tools else {}
    return subprocess.run(
        [BASH, str(SCRIPT)], env={"PATH": str(folder), **tools, **env}, capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip


def test_nothing_to_do_when_every_tool_is_there(bin_dir: Path, chart_tools: Path) -> None:
    present(bin_dir, *APT_TOOLS)
    done = run(bin_dir, chart_tools)
    assert (done.returncode, done.stderr) == (0, "")


def test_helm_is_built_with_go_once(bin_dir: Path, chart_tools: Path, tmp_path: Path) -> None:
    """Go's `install` puts helm in GOBIN; the script moves it to the versioned path."""
    present(bin_dir, *APT_TOOLS)
    helm = chart_tools / f"helm-{HELM_VERSION}" / "helm"
    helm.unlink()
    calls = tmp_path / "go-calls"
    go = tmp_path / "go" / "go"
    go.parent.mkdir()
    chmod = shutil.which("chmod")
    stub(
        go.parent,
        "go",
        f'echo "$*" >> {calls}; printf ok > "$GOBIN/helm"; {chmod} +x "$GOBIN/helm"',
    )
    assert run(bin_dir, chart_tools, NEWSMON_GO=str(go)).returncode == 0
    assert helm.read_text() == "ok"
    assert run(bin_dir, chart_tools, NEWSMON_GO=str(go)).returncode == 0
    (call,) = calls.read_text().splitlines()
    assert call.startswith("install -trimpath -ldflags")
    assert call.endswith(f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}")
    assert "k8sVersionMinor=" in call  # else helm renders for Kubernetes 1.20


def test_without_go_the_chart_tools_stop_with_one_line(bin_dir: Path, chart_tools: Path) -> None:
    present(bin_dir, *APT_TOOLS)
    (chart_tools / f"helm-{HELM_VERSION}" / "helm").unlink()
    done = run(bin_dir, chart_tools, NEWSMON_GO="/nonexistent/go")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "go not found" in done.stderr


def test_the_crd_schemas_come_from_npm(bin_dir: Path, chart_tools: Path, tmp_path: Path) -> None:
    present(bin_dir, *APT_TOOLS)
    shutil.rmtree(chart_tools / "node_modules")
    calls = tmp_path / "npm-calls"
    stub(bin_dir, "npm", f'echo "$*" >> {calls}')
    assert run(bin_dir, chart_tools).returncode == 0
    (call,) = calls.read_text().splitlines()
    assert call.startswith(f"install --prefix {chart_tools} ")
    assert all(f"@kubernetes-models/{p}@" in call for p in SCHEMA_PACKAGES)


@pytest.mark.parametrize(
    ("tools", "java", "named"),
    [
        (("java", "mvn", "chromium", "npm", "node"), "17.0.2", "promtool (package prometheus)"),
        (
            ("java", "mvn", "promtool", "chromium", "npm", "node"),
            "11.0.22",
            "java (package openjdk-17-jre-headless)",
        ),
        (
            ("promtool", "chromium", "npm", "node"),
            "17",
            "java (package openjdk-17-jre-headless), mvn (package maven)",
        ),
        (("java", "mvn", "promtool", "chromium"), "17", "npm (package npm), node (package nodejs)"),
        (("java", "mvn", "promtool", "npm", "node"), "17", "chromium (package chromium)"),
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


def test_as_root_it_updates_then_installs_what_is_missing(
    bin_dir: Path, tmp_path: Path, chart_tools: Path
) -> None:
    present(bin_dir, "java", "mvn", "chromium", "npm", "node")
    calls = tmp_path / "apt-calls"
    stub(bin_dir, "id", "echo 0")
    stub(
        bin_dir, "apt-get",
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" = install ]; then printf "#!{BASH}\\n" > {bin_dir}/promtool; '
        f"{shutil.which('chmod')} +x {bin_dir}/promtool; fi",
    )  # fmt: skip
    done = run(bin_dir, chart_tools)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends prometheus",
    ]


def test_a_failed_install_names_what_is_still_missing(bin_dir: Path) -> None:
    present(bin_dir, "java", "promtool", "chromium", "npm", "node")
    stub(bin_dir, "id", "echo 0")
    stub(bin_dir, "apt-get", ":")
    done = run(bin_dir)
    assert done.returncode == 1
    assert "still missing after apt-get install: mvn (package maven)" in done.stderr
