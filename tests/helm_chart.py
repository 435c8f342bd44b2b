"""deploy/helm/newsmon rendered by the helm that scripts/install-chart-tools.sh built.

`make test` installs the tools first (scripts/setup-system.sh); when they are missing the
chart tests fail with one line saying so, never skip.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "newsmon"
INSTALLER = ROOT / "scripts" / "install-chart-tools.sh"
CRD_VALIDATOR = Path(__file__).resolve().parent / "crd_validate.js"
RELEASE = "newsmon"

Manifest = dict[str, Any]
WORKLOADS = ("Deployment", "StatefulSet")

# The two values files the checks run with. The defaults need the two values a user must
# give (the chart stops with a message without them: see test_helm.py).
REQUIRED_SETS = [
    "--set", "config.kafka.bootstrap_servers=kafka-bootstrap.kafka:9092",
    "--set-json", 'destinations=[{"id":"chat","type":"apprise","url":"json://chat.example.org/hook"}]',
]  # fmt: skip
VALUES = {
    "default": REQUIRED_SETS,
    "all-on": ["-f", str(CHART / "ci" / "all-on-values.yaml")],
}


def tools_dir() -> Path:
    """Where install-chart-tools.sh installs (the same defaults)."""
    if os.environ.get("NEWSMON_CHART_TOOLS"):
        return Path(os.environ["NEWSMON_CHART_TOOLS"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "newsmon" / "chart-tools"


def helm_path() -> Path:
    """Where install-chart-tools.sh puts the helm of the version it names."""
    version = re.search(r"^HELM_VERSION=(\S+)", INSTALLER.read_text(), re.MULTILINE)
    assert version, f"{INSTALLER} names no HELM_VERSION"
    return tools_dir() / f"helm-{version.group(1)}" / "helm"


def require_helm() -> Path:
    helm = helm_path()
    if not os.access(helm, os.X_OK):
        pytest.fail(
            f"helm not installed at {helm}: run scripts/install-chart-tools.sh "
            "(make test does, through scripts/setup-system.sh)",
            pytrace=False,
        )
    return helm


def require_crd_schemas() -> tuple[str, Path]:
    node = shutil.which("node")
    package = tools_dir() / "node_modules" / "@kubernetes-models" / "keda" / "package.json"
    if node is None or not package.is_file():
        pytest.fail(
            f"node or KEDA's CRD schemas ({package}) missing: run scripts/setup-system.sh",
            pytrace=False,
        )
    return node, tools_dir()


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(require_helm()), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"helm {' '.join(args)}: {done.stderr.strip()}", pytrace=False)
    return done


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that Kubernetes would read differently (a key given twice) is an error here."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        repeated = {k for k in keys if keys.count(k) > 1}
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"keys given twice: {sorted(map(str, repeated))}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


@functools.cache
def render(*values_args: str) -> tuple[Manifest, ...]:
    """Every manifest `helm template` renders (hooks included), in order."""
    out = helm("template", RELEASE, str(CHART), *values_args).stdout
    return tuple(doc for doc in yaml.load_all(out, Loader=_UniqueKeyLoader) if doc)


def rendered(values: str) -> tuple[Manifest, ...]:
    return render(*VALUES[values])


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def validate_crds(resources: list[Manifest]) -> list[str | None]:
    """Each custom resource checked by its CRD's schema; None when valid."""
    node, prefix = require_crd_schemas()
    done = subprocess.run(
        [node, str(CRD_VALIDATOR), str(prefix)], input=json.dumps(resources),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    results: list[str | None] = json.loads(done.stdout)
    return results


def workload(manifests: tuple[Manifest, ...], worker: str) -> Manifest:
    found = [
        m
        for m in manifests
        if m["kind"] in WORKLOADS
        and m["metadata"]["labels"].get("app.kubernetes.io/component") == worker
    ]
    assert len(found) == 1, f"{worker}: {len(found)} workloads"
    return found[0]


def container_of(manifest: Manifest) -> dict[str, Any]:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def pods_of(manifests: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest]]:
    """Every workload and the hook Job, by what they run."""
    for manifest in manifests:
        if manifest["kind"] in (*WORKLOADS, "Job"):
            yield manifest["metadata"]["name"], manifest


class PodFiles:
    """The files a pod sees, written under a temporary folder: ConfigMaps and chart-made
    Secrets at their mount paths (Secrets made elsewhere, like a CA, are absent)."""

    def __init__(self, manifests: tuple[Manifest, ...], pod: Manifest, root: Path) -> None:
        self.root = root
        self.mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in pod["spec"]["template"]["spec"]["volumes"]}
        claims = {c["metadata"]["name"] for c in pod["spec"].get("volumeClaimTemplates", [])}
        for mount in container_of(pod)["volumeMounts"]:
            folder = root / mount["mountPath"].lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            self.mounts[mount["mountPath"]] = folder
            volume = volumes.get(mount["name"])
            assert volume is not None or mount["name"] in claims, f"no volume {mount['name']}"
            if volume is not None:
                self._fill(manifests, volume, folder)

    def _fill(self, manifests: tuple[Manifest, ...], volume: Manifest, folder: Path) -> None:
        sources = [s for s in volume.get("projected", {}).get("sources", [])]
        if "configMap" in volume:
            sources.append({"configMap": volume["configMap"]})
        if "secret" in volume:
            sources.append({"secret": {"name": volume["secret"]["secretName"],
                                       "items": volume["secret"].get("items")}})  # fmt: skip
        for source in sources:
            for kind, ref in source.items():
                for key, text in object_data(manifests, kind, ref["name"]).items():
                    items = {i["key"]: i["path"] for i in ref.get("items") or []}
                    if not items or key in items:
                        (folder / items.get(key, key)).write_text(text, encoding="utf-8")

    def local(self, value: str) -> str:
        """A path inside the pod as a path under the temporary folder."""
        for mount, folder in self.mounts.items():
            if value == mount or value.startswith(mount + "/"):
                return str(folder) + value[len(mount) :]
        return value


def object_data(manifests: tuple[Manifest, ...], kind: str, name: str) -> dict[str, str]:
    """The data of a rendered ConfigMap or Secret; {} for one the chart does not make."""
    wanted = {"configMap": "ConfigMap", "secret": "Secret"}[kind]
    found = [m for m in of_kind(manifests, wanted) if m["metadata"]["name"] == name]
    if not found:
        return {}
    manifest = found[0]
    data = dict(manifest.get("stringData") or {})
    for key, value in (manifest.get("data") or {}).items():
        data[key] = base64.b64decode(value).decode() if wanted == "Secret" else value
    return data


def env_value(manifests: tuple[Manifest, ...], entry: dict[str, Any]) -> str:
    if "value" in entry:
        return str(entry["value"])
    ref = entry["valueFrom"]["secretKeyRef"]
    return object_data(manifests, "secret", ref["name"])[ref["key"]]


def pod_command(
    manifests: tuple[Manifest, ...], pod: Manifest, root: Path
) -> tuple[list[str], dict[str, str]]:
    """The container's arguments and environment, its files written under `root` and
    every path in them pointing there."""
    container = container_of(pod)
    files = PodFiles(manifests, pod, root)
    argv = [files.local(a) for a in container["args"]]
    env = {e["name"]: files.local(env_value(manifests, e)) for e in container["env"]}
    return argv, env
