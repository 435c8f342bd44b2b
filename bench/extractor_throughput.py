"""Extractor throughput: the whole stage against the bare cost of its libraries, and scaling.

Run from the project root (a Kafka broker is needed for the scaling part):

    NEWSMON_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19092 /tmp/venv/bin/python bench/extractor_throughput.py

Pages: the 91 real news pages of ../shared/corpora/article-extraction, served from a
separate process on 127.0.0.1 so the server's CPU is not counted as the stage's.

1. Overhead, in this process, pinned to one core: stories per CPU-second of
   - bare: `trafilatura.extract` on each page, then spaCy NER (`nlp.pipe`, the same
     NER-only pipeline the stage loads) on the texts, 16 at a time;
   - stage: `ExtractorStage.handle_batch` on RawStory records: decode, fetch the pages over
     HTTP, extract, NER on title and text, fold entities, score topics, encode;
   - kafka: the same stage driven by the `StageRunner` on a real broker (poll, handle,
     publish with acks, commit): the whole worker loop;
   rounds alternate so all see the same machine; medians are compared. Target: <= +15 %.
   For scale, the bare calls with spaCy's full default pipeline are timed once too.
2. Scaling: `newsmon extractor` worker processes on a real broker, each pinned to its own
   core, consuming a raw topic of 4 partitions holding the same pages in each partition.
   Two workers against one, wall-clock stories per second. Target: >= 1.7x. The machine
   may be shared, so the capacity ratio (stories over the busiest worker's CPU seconds) is
   printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import spacy
import trafilatura
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from pipeline_site import serve_html
from spacy.language import Language

from pipeline.config import KafkaSettings, Settings, TopicNames, load_taxonomy_file
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Message
from pipeline.extractor.pages import PageFetcher
from pipeline.extractor.pool import Extraction
from pipeline.extractor.stage import ExtractorStage
from pipeline.metrics import Metrics
from pipeline.models import RawStory, story_id_for

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "article-extraction"
CHUNK = 16  # the stage's batch size (nlp.batch_size)
PARTITIONS = 4
# The stage runs NER only for languages with a model; the bare calls run it on every page.
# Giving the corpus's languages the English model makes both do the same work.
CORPUS_LANGUAGES = ("en", "de", "id", "ru", "ja", "pt")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# One core means one BLAS thread too; set before numpy loads, hence the re-exec in `main`.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Page:
    name: str
    html: bytes
    url: str


def load_pages() -> list[Page]:
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for path in sorted((CORPUS / "html").glob("*.html.gz")):
        name = path.name.removesuffix(".html.gz")
        pages.append(Page(name, gzip.decompress(path.read_bytes()), truth[name]["url"]))
    return pages


# --- a page server in its own process ------------------------------------------------------------


def _serve(pages: dict[str, bytes], port: multiprocessing.Queue[int], cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    serve_html(lambda path: pages.get(path.split("?")[0].rsplit("/", 1)[-1], b""), port)


@contextlib.contextmanager
def page_server(pages: Sequence[Page], cpu: int | None) -> Iterator[str]:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=_serve, args=({p.name: p.html for p in pages}, queue, cpu), daemon=True
    )
    process.start()
    try:
        yield f"http://127.0.0.1:{queue.get(timeout=30)}/page"
    finally:
        process.terminate()
        process.join()


def raw_story(site: str, page: Page, copy: int = 0) -> bytes:
    url = f"{site}/{page.name}?copy={copy}"
    return RawStory(
        id=story_id_for(url), url=url, published=NOW, first_seen=NOW, feed="bench"
    ).to_bytes()


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- Kafka topics of a bench run ------------------------------------------------------------------


class KafkaBench:
    """Topics of their own, a producer that fills every partition alike, and a finish line."""

    def __init__(self, bootstrap: str, site: str, pages: Sequence[Page]) -> None:
        self.run = f"bench-{uuid.uuid4().hex[:8]}"
        self.bootstrap, self.site, self.pages = bootstrap, site, pages
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in self.topics])
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.ends = KafkaConsumer(bootstrap_servers=bootstrap)
        self.enriched = [TopicPartition(f"{self.run}.enriched", p) for p in range(PARTITIONS)]

    @property
    def topics(self) -> list[str]:
        return [f"{self.run}.{t}" for t in ("raw", "enriched", "dead-letter")]

    def publish(self, pages: Sequence[Page], copy: int) -> None:
        """Explicit partitions: each holds the same pages, so every share costs the same."""
        for partition in range(PARTITIONS):
            for page in pages:
                story = raw_story(self.site, page, copy * 100 + partition)
                self.producer.send(f"{self.run}.raw", story, partition=partition)
        self.producer.flush()

    def publish_spread(self, pages: Sequence[Page], copy: int) -> None:
        for n, page in enumerate(pages):
            story = raw_story(self.site, page, copy)
            self.producer.send(f"{self.run}.raw", story, partition=n % PARTITIONS)
        self.producer.flush()

    def settings(self) -> KafkaSettings:
        names = {"raw": "raw", "enriched": "enriched", "dead_letter": "dead-letter"}
        topics = TopicNames(**{field: f"{self.run}.{name}" for field, name in names.items()})
        return KafkaSettings(bootstrap_servers=self.bootstrap, group_prefix=self.run, topics=topics)

    def wait_enriched(self, count: int, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while sum(self.ends.end_offsets(self.enriched).values()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.run}: fewer than {count} enriched stories")
            time.sleep(0.05)

    def close(self) -> None:
        self.producer.close()
        self.ends.close()
        self.admin.delete_topics(self.topics)
        self.admin.close()


# --- 1. overhead ---------------------------------------------------------------------------------


@dataclass
class Timing:
    """CPU seconds and stories of each measured round."""

    cpu: list[float]
    stories: list[int]

    @property
    def rate(self) -> float:
        """Stories per CPU-second, the median round: stories per second per core."""
        return statistics.median(n / cpu for n, cpu in zip(self.stories, self.cpu, strict=True))


def timed(work: Callable[[], int], timing: Timing) -> None:
    cpu = time.process_time()
    stories = work()
    timing.cpu.append(time.process_time() - cpu)
    timing.stories.append(stories)


def bare_calls(pages: Sequence[Page], nlp: Language) -> Callable[[], int]:
    """The libraries alone: extract each page's text, then NER over the texts, 16 at a time."""

    def extract(page: Page) -> str:
        text = trafilatura.extract(
            page.html, url=page.url, favor_precision=True, include_comments=False
        )
        return text or ""

    def run() -> int:
        found: list[list[tuple[str, str]]] = []
        for chunk in chunks(pages, CHUNK):
            texts = [extract(page) for page in chunk]
            docs = nlp.pipe(texts, batch_size=CHUNK)
            found.extend([(e.text, e.label_) for e in doc.ents] for doc in docs)
        return len(found)

    return run


def stage_calls(pages: Sequence[Page], site: str, stage: ExtractorStage) -> Callable[[], int]:
    messages = [Message("raw", 0, n, None, raw_story(site, page)) for n, page in enumerate(pages)]

    def run() -> int:
        return sum(len(stage.handle_batch(chunk)) for chunk in chunks(messages, CHUNK))

    return run


def bench_settings() -> Settings:
    model = Settings().nlp.models["en"]
    return Settings.model_validate(
        {
            "http": {"allow_private_networks": True},
            "nlp": {"models": dict.fromkeys(CORPUS_LANGUAGES, model)},
            # One process: this part measures the stage's own overhead on one core.
            "extraction": {"workers": 1},
        }
    )


def runner_calls(runner: StageRunner, stories: int) -> Callable[[], int]:
    """The worker's loop in this process (poll, handle, publish, commit) for `stories` or more."""

    def run() -> int:
        settled = 0
        while settled < stories:
            settled += runner.run_once(timeout=1.0)
        return settled

    return run


@contextlib.contextmanager
def kafka_runner(
    extraction: Extraction, fetcher: PageFetcher, bench: KafkaBench, records: int
) -> Iterator[StageRunner]:
    """A StageRunner on topics of its own, `records` raw stories waiting for it."""
    kafka = bench.settings()
    stage = ExtractorStage(extraction, fetcher, kafka.topics, Metrics())
    runner = StageRunner(
        stage, kafka, [kafka.topics.raw], Metrics(), threading.Event(), chunk_size=CHUNK
    )
    for copy in range(records // len(bench.pages) + 1):
        bench.publish_spread(bench.pages, copy)
    try:
        yield runner
    finally:
        runner.close()
        bench.close()


def bench_overhead(
    pages: Sequence[Page], site: str, rounds: int, bootstrap: str | None
) -> dict[str, float]:
    """Rounds alternate between the contenders so each sees the same machine."""
    settings = bench_settings()
    taxonomy = load_taxonomy_file(ROOT / "configs" / "topics.yaml")
    extraction = Extraction(settings, taxonomy, Metrics())
    assert extraction.local is not None, "extraction.workers is 1: enrichment in this process"
    timings = {name: Timing([], []) for name in ("bare", "stage", "kafka", "full")}
    with contextlib.ExitStack() as stack:
        fetcher = stack.enter_context(PageFetcher(settings.http, max_bytes=5_000_000))
        stage = ExtractorStage(extraction, fetcher, settings.kafka.topics, Metrics())
        contenders = {
            "bare": bare_calls(pages, extraction.local.models["en"]),
            "stage": stage_calls(pages, site, stage),
        }
        if bootstrap is not None:
            bench = KafkaBench(bootstrap, site, pages)
            records = len(pages) * (rounds + 2)
            runner = stack.enter_context(kafka_runner(extraction, fetcher, bench, records))
            contenders["kafka"] = runner_calls(runner, len(pages))
        for work in contenders.values():
            timed(work, Timing([], []))  # warm-up: caches, lazy imports, the group join
        for _ in range(rounds):
            for name, work in contenders.items():
                timed(work, timings[name])
    timed(bare_calls(pages, spacy.load(settings.nlp.models["en"])), timings["full"])
    figures = {name: t.rate for name, t in timings.items() if t.cpu}
    overheads = {f"{name}_overhead": figures["bare"] / rate - 1 for name, rate in figures.items()}
    return figures | overheads


# --- 2. scaling over Kafka -----------------------------------------------------------------------


def worker_env(run: str, bootstrap: str) -> dict[str, str]:
    prefix = "NEWSMON_KAFKA__TOPICS__"
    return {
        **os.environ,
        "NEWSMON_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "NEWSMON_KAFKA__GROUP_PREFIX": run,
        prefix + "RAW": f"{run}.raw",
        prefix + "ENRICHED": f"{run}.enriched",
        prefix + "DEAD_LETTER": f"{run}.dead-letter",
        "NEWSMON_HTTP__ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSMON_EXTRACTION__WORKERS": "1",  # one process per worker, pinned to its core
        "NEWSMON_METRICS__ENABLED": "false",
        "NEWSMON_LOG__LEVEL": "WARNING",
        "NEWSMON_NLP__MODELS": json.dumps(bench_settings().nlp.models),
    }


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """`newsmon extractor` processes, each pinned to a core of its own before it starts threads."""
    procs = []
    for cpu in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "extractor"], cwd=ROOT, env=env
        )
        os.sched_setaffinity(proc.pid, {cpu})
        procs.append(proc)
    return procs


@dataclass(frozen=True)
class WorkerRun:
    stories: int
    wall: float
    cpu: list[float]  # CPU seconds of each worker process during the measured window
    others: float  # CPU seconds every other process on the machine used meanwhile

    @property
    def rate(self) -> float:
        return self.stories / self.wall

    @property
    def rate_per_core(self) -> float:
        return self.stories / sum(self.cpu)

    @property
    def capacity(self) -> float:
        """Stories per second if each worker had its core to itself: the busiest one decides."""
        return self.stories / max(self.cpu)


def machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_workers(pages: Sequence[Page], site: str, workers: int, bootstrap: str) -> WorkerRun:
    """`workers` extractor processes on a warm, settled consumer group."""
    bench = KafkaBench(bootstrap, site, pages)
    procs = start_workers(workers, worker_env(bench.run, bootstrap))
    try:
        wait_for_members(bench.admin, f"{bench.run}-extractor", workers)
        bench.publish(pages[:2], copy=0)  # warm-up: every partition, so every worker
        bench.wait_enriched(2 * PARTITIONS)
        cpu, busy = [cpu_seconds(p.pid) for p in procs], machine_busy_seconds()
        started = time.perf_counter()
        bench.publish(pages, copy=1)
        bench.wait_enriched(2 * PARTITIONS + len(pages) * PARTITIONS)
        wall = time.perf_counter() - started
        cpu = [cpu_seconds(p.pid) - before for p, before in zip(procs, cpu, strict=True)]
        others = machine_busy_seconds() - busy - sum(cpu)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        bench.close()
    return WorkerRun(len(pages) * PARTITIONS, wall, cpu, others)


def wait_for_members(
    admin: KafkaAdminClient, group: str, members: int, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = admin.describe_groups([group]).get(group, {})
        if info.get("group_state") == "Stable" and len(info.get("members", [])) == members:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{group} did not settle with {members} members")


# --- main ----------------------------------------------------------------------------------------


def print_overhead(figures: dict[str, float]) -> None:
    print(
        "per core (stories per CPU-second, one pinned core, medians of alternating rounds):\n"
        f"  bare libraries (trafilatura.extract + spaCy NER): {figures['bare']:.2f}\n"
        f"  stage transform (decode, fetch over HTTP, extract, NER, fold, topics, encode): "
        f"{figures['stage']:.2f}, overhead {figures['stage_overhead']:+.1%} (target <= +15%)"
    )
    if "kafka" in figures:
        print(
            f"  whole stage over Kafka (StageRunner: poll, the above, publish, commit): "
            f"{figures['kafka']:.2f}, overhead {figures['kafka_overhead']:+.1%} (target <= +15%)"
        )
    print(
        f"  for scale, the bare calls with spaCy's full default pipeline: {figures['full']:.2f} "
        f"(the stage does {figures['stage'] / figures['full']:.2f}x that)"
    )


def print_scaling(one: WorkerRun, two: WorkerRun) -> None:
    print(
        f"newsmon extractor processes over Kafka, each pinned to its own core:\n"
        f"  one worker: {one.rate:.2f} stories/s wall ({one.rate_per_core:.2f} per CPU-second; "
        f"{one.wall:.1f} s, other processes used {one.others:.1f} CPU-s meanwhile)\n"
        f"  two workers: {two.rate:.2f} stories/s wall ({two.rate_per_core:.2f} per CPU-second; "
        f"{two.wall:.1f} s, CPU-s per worker {[round(c, 1) for c in two.cpu]}, "
        f"other processes {two.others:.1f} CPU-s)\n"
        f"  scaling two/one, wall clock: {two.rate / one.rate:.2f}x (target >= 1.7x)\n"
        f"  scaling two/one, capacity (stories over the busiest worker's CPU time): "
        f"{two.capacity / one.capacity:.2f}x"
    )


def main() -> int:
    if any(os.environ.get(name) != value for name, value in ONE_THREAD.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ONE_THREAD})
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating overhead rounds")
    parser.add_argument("--no-kafka", action="store_true", help="skip the parts needing a broker")
    parser.add_argument("--scaling-only", action="store_true", help="skip the overhead part")
    args = parser.parse_args()
    bootstrap = (
        None
        if args.no_kafka
        else os.environ.get("NEWSMON_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    )
    pages = load_pages()
    cores = sorted(os.sched_getaffinity(0))
    print(f"{len(pages)} real news pages; {len(cores)} cores; load average {os.getloadavg()}")
    with page_server(pages, cpu=cores[-1]) as site:
        if not args.scaling_only:
            os.sched_setaffinity(0, {cores[0]})
            print_overhead(bench_overhead(pages, site, args.rounds, bootstrap))
            os.sched_setaffinity(0, set(cores))
        if bootstrap is not None:
            one = bench_workers(pages, site, 1, bootstrap)
            two = bench_workers(pages, site, 2, bootstrap)
            print_scaling(one, two)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
