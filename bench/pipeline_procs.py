"""The pipeline latency bench's processes: config files, the broker, the workers, their CPU.

Every process the bench starts leads a session (process group) of its own, so its
pool workers go with it: `Children.stop_all` sends SIGTERM to each process it started,
by id (a worker finishes what it holds and stops its own pool), and then SIGKILL to
whatever is left of that process's group.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import TopicNames, load_config
from pipeline.corridor.kafka.clients import create_topics
from pipeline.corridor.kafka.outage import is_transient

ROOT = Path(__file__).resolve().parent.parent
DEV_BROKER = "127.0.0.1:19092"
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1iZW5jaG1hcmstc2VjcmV0"
POLL_SECONDS = 0.5
TOPIC_KEYS = tuple(TopicNames.model_fields)
"""Every topic of a run, named after it: a run never reads an earlier run's candidates or
state changelogs on a shared broker."""
_METRICS_PORT = re.compile(r"metrics listening host=\S+ port=(\d+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Mode:
    """`extractors` None is `newsmon run`; otherwise the Kafka workers with that many."""

    name: str
    extractors: int | None


MODES = (
    Mode("newsmon run", None),
    Mode("kafka, 1 extractor", 1),
    Mode("kafka, 2 extractors", 2),
)


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchFiles:
    config: Path
    feeds: Path
    rules: Path
    state: Path
    run_id: str

    def flags(self, state: Path | None = None) -> list[str]:
        return [
            "--config", str(self.config), "--feeds", str(self.feeds),
            "--rules", str(self.rules), "--state-dir", str(state or self.state),
        ]  # fmt: skip


def settings_for(
    run_id: str, bootstrap: str, receiver: str, languages: set[str], model: str
) -> dict[str, Any]:
    """newsmon.yaml for a bench run: the defaults, except what a paced loopback test needs."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_prefix": run_id,
            "topics": {key: f"{run_id}.{key}" for key in TOPIC_KEYS},
        },
        "http": {"allow_private_networks": True},
        # Backoff after a failed poll starts at the minimum interval: keep it at the poll pace.
        "poller": {"min_interval_seconds": POLL_SECONDS},
        # Every language of the pages gets NER, as the bare calls give every page NER.
        "nlp": {"models": dict.fromkeys(sorted(languages | {"en"}), model)},
        # The default throttle (20 alerts an hour per rule, then a digest) would fold the
        # bench's alerts into digests.
        "rules": {"throttle_max_alerts": 1_000_000_000},
        "notifier": {"destinations": [fast_webhook(receiver)]},
        "metrics": {"host": "127.0.0.1", "port": 0},
    }


def apply_override(settings: dict[str, Any], assignment: str) -> None:
    """`nlp.batch_size=4` into the settings tree (the value read as YAML)."""
    path, equals, value = assignment.partition("=")
    keys = path.strip().split(".")
    if not equals or not all(keys):
        raise ValueError(f"{assignment!r}: expected SECTION.KEY=VALUE")
    target = settings
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = yaml.safe_load(value)


def fast_webhook(url: str) -> dict[str, Any]:
    """A webhook destination defaults to 1 alert/s (a chat service's pace): lift it."""
    pace = {"rate_per_second": 10_000.0, "burst": 1000}
    return {"id": "bench", "type": "webhook", "url": url, "secret": SECRET, **pace}


def write_files(folder: Path, settings: dict[str, Any], feed_url: str, watch: str) -> BenchFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = BenchFiles(
        folder / "newsmon.yaml", folder / "feeds.yaml", folder / "rules.yaml", folder / "state",
        str(settings["kafka"]["group_prefix"]),
    )  # fmt: skip
    files.config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    feeds = {"feeds": [{"url": feed_url, "name": "bench-wire", "interval": POLL_SECONDS}]}
    files.feeds.write_text(yaml.safe_dump(feeds), encoding="utf-8")
    rules = {"rules": [{"id": "bench", "name": "Bench watch term", "terms": [watch]}]}
    files.rules.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return files


def new_run_id() -> str:
    return f"bench-latency-{uuid.uuid4().hex[:8]}"


# --- processes ----------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def child_env() -> dict[str, str]:
    """The caller's environment without NEWSMON_ settings: the config file says it all."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("NEWSMON_")}


@dataclass
class Children:
    """The processes of one mode; each leads its own process group."""

    folder: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Child:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def newsmon(self, name: str, *args: str) -> Child:
        return self.start(name, [sys.executable, "-m", "pipeline.cli", *args])

    def check_alive(self) -> None:
        for child in self.started:
            if child.process.poll() is not None:
                tail = child.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{tail}")

    def stop_all(self, grace: float = 30.0) -> None:
        """SIGTERM to each child (it stops its own pool), then SIGKILL to what is left of its group."""
        for child in self.started:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in self.started:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
        self.started.clear()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of each child, and of the pool processes in its group if any."""
        by_group = group_cpu_seconds()
        found: dict[str, float] = {}
        for child in self.started:
            leader, pool = by_group.get(child.process.pid, (0.0, 0.0))
            found[child.name] = leader
            if pool:
                found[f"{child.name} pool"] = pool
        return found

    def metrics_ports(self) -> dict[str, int]:
        ports = {}
        for child in self.started:
            found = _METRICS_PORT.search(child.log.read_text(errors="replace"))
            if found:
                ports[child.name] = int(found.group(1))
        return ports


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Our child leads its group (start_new_session): signal that group, by its id."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def group_cpu_seconds() -> dict[int, tuple[float, float]]:
    """Per process group, from /proc: (CPU seconds of its leader, of the other members)."""
    totals: dict[int, tuple[float, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group, used = int(fields[2]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        leader, others = totals.get(group, (0.0, 0.0))
        is_leader = int(stat.parent.name) == group
        totals[group] = (leader + used, others) if is_leader else (leader, others + used)
    return totals


def local_broker_pid(bootstrap: str) -> int | None:
    """The broker's process if it runs on this machine (its CPU is the pipeline's too)."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    return listener_pid(int(port)) if host in ("127.0.0.1", "localhost") else None


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (the broker), to count its CPU; None if unseen."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                return int(fd.parent.parent.name)
    return None


def wait_for_quiet(cores: float, budget: float) -> float:
    """Between modes (nothing of ours runs): until the machine's busy cores are at most
    `cores`, or `budget` seconds; returns the seconds waited."""
    waited = 0.0
    while waited < budget:
        busy, started = machine_busy_seconds()[0], time.monotonic()
        time.sleep(1.0)
        if (machine_busy_seconds()[0] - busy) / (time.monotonic() - started) <= cores:
            break
        waited += 1.0
    return waited


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, wall CPU seconds) of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


# --- the modes -------------------------------------------------------------------------------


def start_mode(mode: Mode, files: BenchFiles, children: Children) -> None:
    if mode.extractors is None:
        children.newsmon("run", "run", "--allow-private-networks", *files.flags())
        return
    settings = load_config(files.config, files.feeds, files.rules).settings
    create_topics(settings.kafka)
    for n in range(mode.extractors):
        children.newsmon(f"extractor-{n + 1}", "extractor", *files.flags())
    children.newsmon("rules", "rules", *files.flags(files.state / "rules"))
    children.newsmon("notifier", "notifier", *files.flags(files.state / "notifier"))
    children.newsmon(
        "poller", "poller", "--state", "local", "--allow-private-networks",
        *files.flags(files.state / "poller"),
    )  # fmt: skip


def wait_for_groups(
    bootstrap: str, groups: dict[str, int], children: Children, timeout: float = 240
) -> None:
    """Until each consumer group is Stable with its members (no rebalance mid-probe).

    A group whose coordinator is still being set up answers CoordinatorNotAvailable (a
    transient error, as are the others `is_transient` knows): asked again until `timeout`.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while any(not _settled(admin, g, n) for g, n in groups.items()):
            children.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer groups {sorted(groups)} did not settle")
            time.sleep(0.5)
    finally:
        admin.close()


def _settled(admin: KafkaAdminClient, group: str, members: int) -> bool:
    try:
        info = admin.describe_groups([group]).get(group, {})
    except KafkaError as exc:
        if not is_transient(exc):
            raise
        return False
    return bool(info.get("group_state") == "Stable" and len(info.get("members", [])) == members)


def consumer_groups(mode: Mode, run_id: str) -> dict[str, int]:
    if mode.extractors is None:
        return {}
    return {
        f"{run_id}-extractor": mode.extractors,
        f"{run_id}-rules": 1,
        f"{run_id}-notifier": 1,
    }


def delete_topics(bootstrap: str, run_id: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        mine = [f"{run_id}.{key}" for key in TOPIC_KEYS if f"{run_id}.{key}" in existing]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


# --- the broker --------------------------------------------------------------------------------


def reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def broker(given: str | None, folder: Path) -> Iterator[str]:
    """The broker to use: --bootstrap, NEWSMON_KAFKA__BOOTSTRAP_SERVERS, the dev broker, or ours."""
    address = given or os.environ.get("NEWSMON_KAFKA__BOOTSTRAP_SERVERS")
    if address or reachable(DEV_BROKER):
        yield address or DEV_BROKER
        return
    port, control = free_port(), free_port()
    script = str(ROOT / "scripts" / "kafka.sh")
    subprocess.run([script, "start", str(folder), str(port), str(control)], check=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([script, "stop", str(folder)], check=False)


# --- metrics ---------------------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a worker's /metrics, keyed by (name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
