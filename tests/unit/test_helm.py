"""The Helm chart (deploy/helm/newsmon): linted, rendered, validated, and held to the code.

- `helm lint --strict` and `helm template` with the default values (plus the two values a
  user must give) and with ci/all-on-values.yaml, which turns every option on;
- every rendered manifest validated against the Kubernetes OpenAPI schemas shipped by
  kubernetes-validate (strict: unknown fields fail), for the oldest Kubernetes the chart
  supports and the newest the package knows;
- the custom resources (KEDA ScaledObject and TriggerAuthentication, the Prometheus
  Operator's ServiceMonitor and PrometheusRule) validated against their CRD schemas as
  compiled by the npm packages @kubernetes-models/keda and
  @kubernetes-models/prometheus-operator (installed by scripts/install-chart-tools.sh);
- what the chart says about the workers checked against the workers themselves: each
  container's arguments parsed by the real CLI, its environment names real settings, its
  config files loaded by the real loader from the rendered ConfigMaps and Secrets, the
  metrics port that loader yields is the container's port, its Service's and its
  probes', and every probe path answers on the metrics server the workers start. A port
  or a probe path changed in the chart alone fails here. (Which consumer group and topic
  each worker really uses is checked on a real broker: tests/integration/test_helm_kafka.py.)
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helm_chart import (
    CHART,
    REQUIRED_SETS,
    ROOT,
    VALUES,
    Manifest,
    PodFiles,
    container_of,
    helm,
    named,
    of_kind,
    pod_command,
    pods_of,
    render,
    rendered,
    validate_crds,
    workload,
)
from settings_env import is_setting

from pipeline.cli import build_parser
from pipeline.cli_common import load_from_args
from pipeline.config import Config
from pipeline.metrics import Metrics
from pipeline.runtime import start_metrics

WORKERS = ("poller", "extractor", "rules", "notifier")
CONSUMERS = ("extractor", "rules", "notifier")
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
NOT_SETTINGS = {"HOME", "SSL_CERT_FILE"}  # process environment, not newsmon settings
OLDEST_KUBERNETES = "1.25.0"  # Chart.yaml: kubeVersion >=1.25.0-0


# --- helm lint, template, and the schemas -------------------------------------------------


@pytest.mark.parametrize("values", sorted(VALUES))
def test_chart_lints_strictly(values: str) -> None:
    done = helm("lint", "--strict", str(CHART), *VALUES[values], check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", sorted(VALUES))
@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_manifests_validate_against_the_kubernetes_schemas(values: str, version: str) -> None:
    manifests = [m for m in rendered(values) if not m["apiVersion"].startswith(CRD_GROUPS)]
    failures = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}")
    assert failures == []


@pytest.mark.parametrize("values", sorted(VALUES))
def test_custom_resources_validate_against_their_crd_schemas(values: str) -> None:
    resources = [m for m in rendered(values) if m["apiVersion"].startswith(CRD_GROUPS)]
    results = validate_crds(resources)
    failures = [
        f"{r['kind']}/{r['metadata']['name']}: {error}"
        for r, error in zip(resources, results, strict=True)
        if error
    ]
    assert failures == []


def test_the_crd_schemas_reject_a_broken_scaled_object() -> None:
    """The check above can fail: a number where KEDA wants a string, a missing target."""
    scaled = named(rendered("all-on"), "ScaledObject", "newsmon-extractor")
    wrong_type = yaml.safe_load(yaml.safe_dump(scaled))
    wrong_type["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 50
    no_target = yaml.safe_load(yaml.safe_dump(scaled))
    del no_target["spec"]["scaleTargetRef"]
    errors = validate_crds([wrong_type, no_target])
    assert errors[0] is not None and "lagThreshold" in errors[0]
    assert errors[1] is not None and "scaleTargetRef" in errors[1]


def test_the_default_values_render_what_a_plain_install_needs() -> None:
    manifests = rendered("default")
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    for worker in WORKERS:
        assert ("Service", f"newsmon-{worker}") in kinds
        assert ("PodDisruptionBudget", f"newsmon-{worker}") in kinds
    assert workload(manifests, "poller")["kind"] == "Deployment"
    assert workload(manifests, "extractor")["kind"] == "Deployment"
    assert workload(manifests, "rules")["kind"] == "Deployment"  # its state is in Kafka
    assert workload(manifests, "notifier")["kind"] == "StatefulSet"
    assert ("Job", "newsmon-topics") in kinds
    assert not [m for m in manifests if m["apiVersion"].startswith(CRD_GROUPS)]
    assert not of_kind(manifests, "HorizontalPodAutoscaler")


def test_all_on_renders_every_option() -> None:
    manifests = rendered("all-on")
    kinds = {m["kind"] for m in manifests}
    assert {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert {m["metadata"]["name"] for m in of_kind(manifests, "ScaledObject")} == {
        f"newsmon-{w}" for w in CONSUMERS
    }
    assert not of_kind(manifests, "HorizontalPodAutoscaler"), "KEDA makes its own HPA"
    dashboard = named(manifests, "ConfigMap", "newsmon-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


# --- required values and refusals --------------------------------------------------------


def test_without_kafka_the_chart_stops_with_a_message() -> None:
    done = helm("template", "x", str(CHART), check=False)
    assert done.returncode != 0
    assert "config.kafka.bootstrap_servers is required" in done.stderr


def test_a_notifier_without_destinations_stops_the_render() -> None:
    args = ["--set", "config.kafka.bootstrap_servers=k:9092"]
    done = helm("template", "x", str(CHART), *args, check=False)
    assert done.returncode != 0
    assert "workers.notifier: no destinations" in done.stderr
    helm("template", "x", str(CHART), *args, "--set", "workers.notifier.enabled=false")


@pytest.mark.parametrize(
    ("change", "message"),
    [(["--set", "workers.rules.kind=Statefulset"], "/workers/rules/kind"),
     (["--set", "probes.readinessPath=readyz"], "/probes/readinessPath"),
     (["--set", "config.kafka.security_protocol=TLS"], "/config/kafka/security_protocol"),
     (["--set", "workers.extractr.enabled=true"], "additional properties 'extractr'")],
)  # fmt: skip
def test_values_schema_names_a_wrong_value(change: list[str], message: str) -> None:
    done = helm("template", "x", str(CHART), *REQUIRED_SETS, *change, check=False)
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_the_rules_worker_scales_out_as_either_kind(kind: str) -> None:
    """Its decisions are restored from the rules.state changelog on every hand-over, so
    replicas need no shared volume (a StatefulSet only keeps each replica's cache)."""
    manifests = render(
        *REQUIRED_SETS, "--set", f"workers.rules.kind={kind}", "--set", "workers.rules.replicas=3"
    )
    assert workload(manifests, "rules")["kind"] == kind
    assert workload(manifests, "rules")["spec"]["replicas"] == 3


# --- autoscaling ------------------------------------------------------------------------


def test_replicas_are_capped_at_the_partitions() -> None:
    manifests = rendered("all-on")
    partitions = loaded_config(manifests, "extractor").settings.kafka.partitions
    extractor = named(manifests, "ScaledObject", "newsmon-extractor")
    assert extractor["spec"]["maxReplicaCount"] == partitions == 12  # asked for 20
    for scaled in of_kind(manifests, "ScaledObject"):
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        assert scaled["spec"]["maxReplicaCount"] <= partitions


def test_scaled_objects_target_their_worker_and_scale_down_slowly() -> None:
    manifests = rendered("all-on")
    for worker in CONSUMERS:
        scaled = named(manifests, "ScaledObject", f"newsmon-{worker}")
        target = workload(manifests, worker)
        ref = scaled["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == (target["kind"], target["metadata"]["name"])
        assert "replicas" not in target["spec"], "the autoscaler owns the replica count"
        behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
        trigger = scaled["spec"]["triggers"][0]
        settings = loaded_config(manifests, worker).settings
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["bootstrapServers"] == settings.kafka.bootstrap_servers
        assert trigger["metadata"]["offsetResetPolicy"] == "earliest"
        assert trigger["authenticationRef"]["name"] == "newsmon-kafka"


def test_the_hpa_is_the_fallback_without_keda() -> None:
    manifests = render(*REQUIRED_SETS, "--set", "autoscaling.hpa.enabled=true")
    hpas = {m["metadata"]["name"]: m for m in of_kind(manifests, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"newsmon-extractor", "newsmon-rules", "newsmon-notifier"}
    for hpa in hpas.values():
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["maxReplicas"] <= 6
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    for manifest in manifests:
        kubernetes_validate.validate(manifest, OLDEST_KUBERNETES, strict=True)


# --- configuration: what rolls what -----------------------------------------------------


def pod_annotations(manifests: tuple[Manifest, ...]) -> dict[str, dict[str, str]]:
    return {
        w: workload(manifests, w)["spec"]["template"]["metadata"].get("annotations", {})
        for w in WORKERS
    }


def test_a_rules_change_rolls_no_pod_a_settings_change_rolls_all() -> None:
    base = pod_annotations(render(*REQUIRED_SETS))
    rules = render(*REQUIRED_SETS, "--set-json", 'rules=[{"id":"x","terms":["y"]}]')
    assert pod_annotations(rules) == base
    assert (
        named(rules, "ConfigMap", "newsmon-rules")["data"]
        != named(render(*REQUIRED_SETS), "ConfigMap", "newsmon-rules")["data"]
    )
    settings = pod_annotations(render(*REQUIRED_SETS, "--set", "config.log.level=DEBUG"))
    assert all(settings[w] != base[w] for w in WORKERS)
    feeds = pod_annotations(
        render(*REQUIRED_SETS, "--set-json", 'feeds=[{"url":"https://example.org/rss"}]')
    )
    assert [w for w in WORKERS if feeds[w] != base[w]] == ["poller"]


def test_the_config_is_mounted_as_a_directory_so_rules_reload() -> None:
    """A subPath mount never sees the kubelet's update of a ConfigMap."""
    for _, pod in pods_of(rendered("all-on")):
        for mount in container_of(pod)["volumeMounts"]:
            assert "subPath" not in mount, mount


# --- held to the code: CLI, settings, ports, probes ------------------------------------


_loaded: dict[tuple[int, str], Config] = {}


def loaded_config(
    manifests: tuple[Manifest, ...], worker: str, pod: Manifest | None = None
) -> Config:
    """The config a worker's container loads: its arguments parsed by the real CLI, its
    files and environment as the pod has them, through the real loader."""
    pod = pod or workload(manifests, worker)
    key = (id(pod), worker)
    if key not in _loaded:
        _loaded[key] = _load(manifests, pod)
    return _loaded[key]


def _load(manifests: tuple[Manifest, ...], pod: Manifest) -> Config:
    with tempfile.TemporaryDirectory() as tmp:
        argv, env = pod_command(manifests, pod, Path(tmp))
        args = build_parser().parse_args(argv)
        saved = dict(os.environ)
        try:
            for name in [n for n in os.environ if n.upper().startswith("NEWSMON_")]:
                del os.environ[name]
            os.environ.update({k: v for k, v in env.items() if k.startswith("NEWSMON_")})
            return load_from_args(args)
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.mark.parametrize("values", sorted(VALUES))
def test_every_container_runs_a_real_command_with_real_settings(values: str) -> None:
    manifests = rendered(values)
    commands = {}
    for name, pod in pods_of(manifests):
        container = container_of(pod)
        args = build_parser().parse_args(container["args"])
        assert callable(args.func), name
        commands[name] = (
            container["args"][:2] if name.endswith("-topics") else container["args"][:1]
        )
        names = [e["name"] for e in container["env"]]
        unknown = [n for n in names if n not in NOT_SETTINGS and not is_setting(n)]
        assert unknown == [], f"{name}: not settings: {unknown}"
    console = [["console"]] if values == "all-on" else []  # optional, on in all-on
    expected = [[w] for w in WORKERS] + [["topics", "create"]] + console
    assert sorted(commands.values()) == sorted(expected)


@pytest.mark.parametrize("values", sorted(VALUES))
def test_every_worker_loads_the_rendered_config(values: str) -> None:
    """The rendered newsmon.yaml, feeds, rules, taxonomy and secrets pass the real loader
    (extra keys are errors there), as each worker and the topics job would load them."""
    manifests = rendered(values)
    for name, pod in pods_of(manifests):
        worker = name.removeprefix("newsmon-")
        config = loaded_config(manifests, worker, pod)
        assert config.settings.kafka.bootstrap_servers in (
            "kafka-bootstrap.kafka:9092",
            "my-cluster-kafka-bootstrap.kafka.svc:9093",
        )
        assert config.settings.log.format == "json"


def test_secrets_reach_the_settings() -> None:
    """All-on: the SASL password through NEWSMON_KAFKA__SASL_PASSWORD_FILE, destinations
    with their tokens and webhook secret through the notifier's environment."""
    manifests = rendered("all-on")
    values = yaml.safe_load((CHART / "ci" / "all-on-values.yaml").read_text())
    for name, pod in pods_of(manifests):
        settings = loaded_config(manifests, name.removeprefix("newsmon-"), pod).settings
        assert settings.kafka.sasl_password is not None, name
        assert (
            settings.kafka.sasl_password.get_secret_value() == values["kafkaAuth"]["saslPassword"]
        )
    notifier = loaded_config(manifests, "notifier").settings.notifier
    assert [d.id for d in notifier.destinations] == [d["id"] for d in values["destinations"]]
    hooks = notifier.destinations[1]
    assert hooks.secret is not None and hooks.secret.get_secret_value().startswith("whsec_")
    for worker in ("poller", "extractor", "rules"):
        names = {e["name"] for e in container_of(workload(manifests, worker))["env"]}
        assert "NEWSMON_NOTIFIER__DESTINATIONS" not in names, worker


def test_the_kafka_ca_joins_the_public_cas_in_the_bundle_ssl_cert_file_names(
    tmp_path: Path,
) -> None:
    """The init container's command, run here: the bundle holds certifi's CAs (webhooks
    to public endpoints go on working under httpx, which trusts SSL_CERT_FILE alone)
    and the Kafka CA; every container that talks to Kafka points SSL_CERT_FILE at it."""
    manifests = rendered("all-on")
    for name, pod in pods_of(manifests):
        spec = pod["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        root = tmp_path / name
        files = PodFiles(
            manifests, {"spec": {"template": {"spec": {**spec, "containers": [init]}}}}, root
        )
        ca_path = Path(files.local(init["command"][3]))
        ca_path.write_text("-----BEGIN CERTIFICATE-----\nKAFKA-CA\n-----END CERTIFICATE-----\n")
        command = [sys.executable, *[files.local(a) for a in init["command"][1:]]]
        subprocess.run(command, check=True, timeout=30)
        bundle = Path(files.local(init["command"][4])).read_text()
        assert "KAFKA-CA" in bundle
        assert bundle.count("BEGIN CERTIFICATE") > 100, name  # certifi's public CAs
        env = {e["name"]: e.get("value") for e in container_of(pod)["env"]}
        assert env["SSL_CERT_FILE"] == init["command"][4], name
        mounts = {m["mountPath"]: m["name"] for m in container_of(pod)["volumeMounts"]}
        init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
        folder = str(Path(env["SSL_CERT_FILE"]).parent)
        assert mounts[folder] == init_mounts[folder], name
    assert (
        "initContainers" not in workload(rendered("default"), "poller")["spec"]["template"]["spec"]
    )


@pytest.mark.parametrize("values", sorted(VALUES))
def test_ports_match_the_metrics_port_the_workers_load(values: str) -> None:
    manifests = rendered(values)
    for worker in WORKERS:
        pod = workload(manifests, worker)
        port = loaded_config(manifests, worker).settings.metrics.port
        container = container_of(pod)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": port}, f"{worker}: container ports {ports}, metrics.port {port}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            target = container[probe]["httpGet"]["port"]
            assert ports.get(target, target) == port, f"{worker} {probe}: port {target}"
        service = named(manifests, "Service", pod["metadata"]["name"])
        (service_port,) = service["spec"]["ports"]
        target = service_port["targetPort"]
        assert ports.get(target, target) == port, f"{worker} Service: targetPort {target}"
        assert service_port["name"] == "metrics"
    for monitor in of_kind(manifests, "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def bool_of(flag: list[bool]) -> bool:
    return flag[0]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("values", sorted(VALUES))
def test_probe_paths_are_served_by_the_workers_metrics_server(values: str) -> None:
    """Each probe path answers 200 on the server the workers start, and 503 once the
    worker is unhealthy: it is the health check, not just any page that exists."""
    manifests = rendered(values)
    for worker in WORKERS:
        settings = loaded_config(manifests, worker).settings
        local = settings.model_copy(
            update={"metrics": settings.metrics.model_copy(update={"host": "127.0.0.1", "port": 0})}
        )
        healthy = [True]
        server = start_metrics(local, Metrics(), health=functools.partial(bool_of, healthy))
        assert server is not None
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            container = container_of(workload(manifests, worker))
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                path = container[probe]["httpGet"]["path"]
                healthy[0] = True
                assert get(base + path) == 200, f"{worker} {probe}: {path} not served"
                healthy[0] = False
                assert get(base + path) == 503, f"{worker} {probe}: {path} is no health check"
            for monitor in of_kind(manifests, "ServiceMonitor"):
                for endpoint in monitor["spec"]["endpoints"]:
                    assert get(base + endpoint["path"]) == 200
        finally:
            server.shutdown()
            server.server_close()


def test_the_readiness_path_is_one_value() -> None:
    manifests = render(*REQUIRED_SETS, "--set", "probes.readinessPath=/readyz")
    for worker in WORKERS:
        container = container_of(workload(manifests, worker))
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("values", sorted(VALUES))
def test_state_dirs_are_writable_volumes_and_persist_where_state_lives(values: str) -> None:
    manifests = rendered(values)
    for worker in WORKERS:
        pod = workload(manifests, worker)
        state_dir = str(build_parser().parse_args(container_of(pod)["args"]).state_dir)
        assert state_dir == "/var/lib/newsmon"  # the Dockerfile user's home and VOLUME
        mounts = {m["mountPath"]: m for m in container_of(pod)["volumeMounts"]}
        assert not mounts[state_dir].get("readOnly"), worker
        claims = [c["metadata"]["name"] for c in pod["spec"].get("volumeClaimTemplates", [])]
        if pod["kind"] == "StatefulSet":
            assert claims == [mounts[state_dir]["name"]], worker


def test_pods_run_as_the_image_user_without_privileges() -> None:
    useradd = re.search(r"--uid (\d+)", (ROOT / "deploy" / "Dockerfile").read_text())
    assert useradd is not None, "the Dockerfile creates its user with a fixed --uid"
    uid = int(useradd.group(1))
    for name, pod in pods_of(rendered("all-on")):
        spec = pod["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == uid, name
        context = container_of(pod)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "/tmp" in {m["mountPath"] for m in container_of(pod)["volumeMounts"]}, name


def test_grace_period_matches_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grace = int(compose["x-newsmon"]["stop_grace_period"].removesuffix("s"))
    for worker in WORKERS:
        spec = workload(rendered("default"), worker)["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] == grace


def test_every_worker_has_requests_and_limits_and_the_pools_fit_them() -> None:
    manifests = rendered("default")
    for worker in WORKERS:
        resources = container_of(workload(manifests, worker))["resources"]
        assert set(resources) == {"requests", "limits"}, worker
        assert {"cpu", "memory"} <= set(resources["limits"]), worker
    extractor = container_of(workload(manifests, "extractor"))
    processes = loaded_config(manifests, "extractor").settings.extraction.workers
    assert processes >= 1, "0 means one per node core, not per CPU granted"
    assert float(extractor["resources"]["limits"]["cpu"]) == processes
    assert loaded_config(manifests, "poller").settings.poller.parse_workers == 1


def test_chart_copies_of_alerts_and_dashboard_match_deploy() -> None:
    pairs = [
        (CHART / "files" / "alerts.yml", ROOT / "deploy" / "prometheus" / "alerts.yml"),
        (CHART / "files" / "dashboard.json", ROOT / "deploy" / "grafana" / "dashboards" / "newsmon.json"),
    ]  # fmt: skip
    for copy, original in pairs:
        assert copy.read_bytes() == original.read_bytes(), f"cp {original} {copy}"


def test_alert_job_names_match_the_service_monitor() -> None:
    """deploy/prometheus/alerts.yml selects job=~"newsmon-.*": the ServiceMonitor's job label."""
    manifests = rendered("all-on")
    (monitor,) = of_kind(manifests, "ServiceMonitor")
    label = monitor["spec"]["jobLabel"]
    for worker in WORKERS:
        service = named(manifests, "Service", workload(manifests, worker)["metadata"]["name"])
        assert service["metadata"]["labels"][label] == f"newsmon-{worker}"
    rule = named(manifests, "PrometheusRule", "newsmon")
    assert rule["spec"] == yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    )


def test_the_console_is_optional_one_replica_with_a_login_and_its_own_store() -> None:
    assert not [m for m in rendered("default") if "console" in m["metadata"]["name"]]
    manifests = rendered("all-on")
    console = named(manifests, "StatefulSet", "newsmon-console")
    assert console["spec"]["replicas"] == 1
    container = container_of(console)
    args = build_parser().parse_args(container["args"])
    assert (args.source, args.bind) == ("kafka", "0.0.0.0:8080")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = {
        p["name"]: p["port"]
        for p in named(manifests, "Service", "newsmon-console")["spec"]["ports"]
    }
    assert ports == service == {"http": 8080, "metrics": 9200}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NEWSMON_CONSOLE__PASSWORD_FILE"].endswith("/password")
    done = helm(
        "template", "x", str(CHART), *REQUIRED_SETS, "--set", "console.enabled=true", check=False
    )
    assert done.returncode != 0
    assert "console: a login is required" in done.stderr


def test_the_console_probes_are_served_where_the_chart_points_them(tmp_path: Path) -> None:
    """The console's http port is the one its --bind names, its readiness probe answers on
    the console app (503 once unhealthy) and its liveness probe on the metrics server."""
    from starlette.testclient import TestClient

    from pipeline.config import load_config
    from pipeline.console.app import Console, build_app, templates
    from pipeline.console.security import Access, LoginThrottle
    from pipeline.history.store import HistoryStore

    manifests = rendered("all-on")
    container = container_of(named(manifests, "StatefulSet", "newsmon-console"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    bind = build_parser().parse_args(container["args"]).bind
    assert ports["http"] == int(bind.rsplit(":", 1)[1])
    healthy = [True]
    config = load_config(state_dir=tmp_path)
    console = Console(
        config, HistoryStore.in_dir(tmp_path), Metrics(), Access("pw", None),
        LoginThrottle(3, 60), templates(), functools.partial(bool_of, healthy),
    )  # fmt: skip
    app = TestClient(build_app(console, "secret"), follow_redirects=False)
    metrics_port = loaded_config(
        manifests, "console", named(manifests, "StatefulSet", "newsmon-console")
    ).settings.metrics.port
    assert ports["metrics"] == metrics_port
    local = config.settings.model_copy(
        update={
            "metrics": config.settings.metrics.model_copy(update={"host": "127.0.0.1", "port": 0})
        }
    )
    server = start_metrics(local, Metrics(), health=functools.partial(bool_of, healthy))
    assert server is not None
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for probe in ("livenessProbe", "readinessProbe"):
            target, path = container[probe]["httpGet"]["port"], container[probe]["httpGet"]["path"]
            for state, status in ((True, 200), (False, 503)):
                healthy[0] = state
                if ports.get(target, target) == ports["http"]:
                    answer = app.get(path).status_code
                else:
                    assert ports.get(target, target) == ports["metrics"], f"console {probe}"
                    answer = get(base + path)
                assert answer == status, f"console {probe}: {path} on {target} gave {answer}"
    finally:
        server.shutdown()
        server.server_close()
