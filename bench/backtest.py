"""`newsmon backtest` read speed against `newsmon match` on the same 100,000 stories.

    .venv/bin/python bench/backtest.py [--stories 100000] [--rounds 1] [--kafka HOST:PORT | --kafka-start]

Stories: 100,000 synthetic enriched stories, each made of three paragraphs drawn from the 91
article bodies of ../shared/corpora/article-extraction (about 800 chars of real news text,
no two alike, so near-duplicate suppression does what it does on real feeds), under its
first article's title. Rules: the small set of bench/rules_match.py (12: the shipped rules
with the examples enabled, and more with `near`, `same_sentence` and entity types).

Baseline: `newsmon match` in-process (`match_lines`, the function the command runs) reading
the stories as JSON lines from a file. Measured: the backtest loop of `newsmon backtest`
(`backtest_command.run`) reading the same stories from the history store that `newsmon run`
keeps (written here the way its writer does), and with --kafka / --kafka-start from an
enriched topic on a real broker (produced here, gzip as the extractor's producer does).
Both run the same engine (`tester_engine`), so the ratio is what reading the history costs.
Each round runs every mode once, and is scored against match in the same round, by wall
time and by the process's CPU time (the shared 2-core host's speed drifts up to 3x between
runs); the figures are the medians of those ratios.
Target: backtest >= 0.80 of match's stories per second.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rules_match import base_rules, load_stories  # noqa: E402

from pipeline.config import KafkaSettings, Rule, RulesSettings, TopicNames  # noqa: E402
from pipeline.history.sources import History, KafkaHistory, LocalHistory  # noqa: E402
from pipeline.history.store import HistoryStore  # noqa: E402
from pipeline.models import EnrichedStory, story_id_for  # noqa: E402
from pipeline.rules.backtest import Backtest, raiser, tester_engine  # noqa: E402
from pipeline.rules.backtest_command import run as backtest_loop  # noqa: E402
from pipeline.rules.commands import match_lines  # noqa: E402

TARGET = 0.80
BATCH = 1000
SPREAD_SECONDS = 7 * 86400.0


def synthetic_stories(count: int, seed: int = 20261201) -> Iterator[EnrichedStory]:
    """`count` distinct stories of three paragraphs drawn from the corpus articles."""
    corpus = load_stories()
    paragraphs = [p for s in corpus for p in s.text.split("\n") if len(p) > 80]
    rng = random.Random(seed)
    for n in range(count):
        base = corpus[n % len(corpus)]
        text = "\n".join(rng.sample(paragraphs, 3))
        url = f"https://bench.example/{n}"
        yield base.model_copy(
            update={"id": story_id_for(url), "url": url, "title": base.title, "text": text}
        )


def write_inputs(count: int, folder: Path) -> tuple[Path, HistoryStore]:
    """The stories as a JSON-lines file (for match) and in a history store (for backtest),
    stored over the last week."""
    lines = folder / "stories.jsonl"
    store = HistoryStore(folder / "history.sqlite3")
    now = time.time()
    batch: list[EnrichedStory] = []
    with lines.open("wb") as out:
        for n, story in enumerate(synthetic_stories(count)):
            out.write(story.to_bytes() + b"\n")
            batch.append(story)
            if len(batch) == BATCH or n == count - 1:
                store.add(batch, [], now - SPREAD_SECONDS * (1 - n / count))
                batch = []
    return lines, store


Measured = tuple[float, float, int, int]
"""(wall seconds, CPU seconds of this process, stories read, alerts)."""


def time_match(rules: list[Rule], lines: Path) -> Measured:
    engine = tester_engine(Path("rules.yaml"), rules, RulesSettings())
    with lines.open(encoding="utf-8") as stories, open(os.devnull, "w") as sink:
        started, cpu = time.perf_counter(), time.process_time()
        read, alerts, _ = match_lines(engine, stories, sink, sink)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.close()
    return seconds, cpu, read, alerts


def time_backtest(rules: list[Rule], open_history: Callable[[], History]) -> Measured:
    engine = tester_engine(Path("rules.yaml"), rules, RulesSettings())
    backtest = Backtest(raiser(engine), engine.compiled.rules)
    started, cpu = time.perf_counter(), time.process_time()
    history = open_history()
    with open(os.devnull, "w") as sink:
        backtest_loop(backtest, history.read(None, None), sink, jsonl=False, shown=False)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    history.close()
    engine.close()
    return seconds, cpu, backtest.stories, sum(o.alerts for o in backtest.outcomes.values())


def fill_topic(settings: KafkaSettings, lines: Path) -> None:
    from pipeline.corridor.kafka.clients import Producer, create_topics
    from pipeline.corridor.records import Output

    create_topics(settings)
    producer = Producer(settings)
    topic = settings.topics.enriched
    batch: list[Output] = []
    with lines.open("rb") as stories:
        for line in stories:
            batch.append(Output(topic, key=None, value=line.rstrip(b"\n")))
            if len(batch) == BATCH:
                producer.publish(batch)
                batch = []
    producer.publish(batch)
    producer.close()


def start_broker(folder: Path) -> tuple[str, Callable[[], None]]:
    from conftest import pick_free_port

    script = ROOT / "scripts" / "kafka.sh"
    port, controller = pick_free_port(), pick_free_port()
    broker = folder / "kafka"
    subprocess.run(
        ["bash", str(script), "start", str(broker), str(port), str(controller)], check=True
    )

    def stop() -> None:
        subprocess.run(["bash", str(script), "stop", str(broker)], check=False)

    return f"127.0.0.1:{port}", stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--kafka", metavar="HOST:PORT", help="also read from a topic there")
    parser.add_argument("--kafka-start", action="store_true", help="start a broker for it")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))

    folder = Path(tempfile.mkdtemp(prefix="newsmon-backtest-bench-"))
    stop_broker: Callable[[], object] = lambda: None  # noqa: E731
    try:
        started = time.perf_counter()
        lines, store = write_inputs(args.stories, folder)
        store.close()
        size = lines.stat().st_size / 1e6
        print(f"{args.stories:,} stories, {size:.0f} MB as JSON lines, written and stored "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        rules = base_rules()
        modes: dict[str, Callable[[], Measured]] = {
            "match (file)": lambda: time_match(rules, lines),
            "backtest (history store)": lambda: time_backtest(
                rules, lambda: LocalHistory(HistoryStore(folder / "history.sqlite3"), owned=True)
            ),
        }
        bootstrap = args.kafka
        if args.kafka_start:
            bootstrap, stop_broker = start_broker(folder)
        if bootstrap:
            run = uuid.uuid4().hex[:8]
            names = {field: f"bench-{run}.{field}" for field in TopicNames.model_fields}
            kafka = KafkaSettings(bootstrap_servers=bootstrap, topics=TopicNames(**names))
            started = time.perf_counter()
            fill_topic(kafka, lines)
            print(f"produced to {kafka.topics.enriched} in {time.perf_counter() - started:.0f} s")
            modes["backtest (Kafka topic)"] = lambda: time_backtest(
                rules, lambda: KafkaHistory(kafka, 30.0)
            )
        report(modes, args.rounds, args.stories)
    finally:
        stop_broker()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(modes: dict[str, Callable[[], Measured]], rounds: int, stories: int) -> None:
    """Each round runs every mode once (the order reversed every other round) and is scored
    as each mode's speed over match's in that round, by wall time and by this process's CPU
    time: the host's speed drifts between rounds and even within one (other work on 2
    cores), and CPU time drifts far less. On Kafka the broker's own CPU is not counted (it
    serves the live workers anyway); the wall ratio includes waiting for it."""
    wall: dict[str, list[float]] = {name: [] for name in modes}
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    speeds: dict[str, list[float]] = {name: [] for name in modes}
    for round_ in range(rounds):
        order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
        took: dict[str, Measured] = {}
        for name in order:
            took[name] = modes[name]()
            seconds, spent, read, alerts = took[name]
            assert read == stories, f"{name} read {read} of {stories} stories"
            print(f"round {round_ + 1}: {name}: {seconds:.1f} s ({spent:.1f} s CPU), "
                  f"{read / seconds:,.0f} stories/s, {alerts:,} alerts")  # fmt: skip
        base = took["match (file)"]
        for name, (seconds, spent, _, _) in took.items():
            wall[name].append(base[0] / seconds)
            cpu[name].append(base[1] / spent)
            speeds[name].append(stories / seconds)
    print(f"\n{rounds} round(s), {len(base_rules())} rules, {stories:,} stories; speed: median "
          "over rounds; ratios: median of each round's ratio to match, wall / CPU:")  # fmt: skip
    for name in modes:
        ratio, cpu_ratio = statistics.median(wall[name]), statistics.median(cpu[name])
        each = ", ".join(f"{w:.2f}/{c:.2f}" for w, c in zip(wall[name], cpu[name], strict=True))
        verdict = "" if name.startswith("match") else (
            "  (target >= 0.80: met)" if min(ratio, cpu_ratio) >= TARGET
            else "  (target >= 0.80: NOT met)"
        )  # fmt: skip
        print(f"  {name:<26} {statistics.median(speeds[name]):>8,.0f} stories/s  "
              f"{ratio:.2f} / {cpu_ratio:.2f} of match (rounds: {each}){verdict}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
