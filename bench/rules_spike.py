"""What a spike rule costs: ms per matching story, and the state it keeps, against a
per-story rule on the same stories in the same run.

    .venv/bin/python bench/rules_spike.py [--stories 3000] [--days 10] [--rounds 3]

Both runs go through `RulesEngine.process` on a file store under a temporary dir
(WAL, synchronous=FULL: a transaction per story, as `newsmon run` does), one rules
file holding one rule watching "Tesla": a per-story rule (dedup, near-duplicate
MinHash, throttle; unthrottled here so every story is decided) and a spike rule (1h
window, 7d baseline). The stories are spread evenly over `--days` with a burst at the
end. Printed: median ms per story of each, their ratio, spikes fired, and the rows the
spike rule's tables hold at the end (bounded by its baseline, not by the run's length).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from pipeline.config import RulesSettings  # noqa: E402
from pipeline.metrics import Metrics  # noqa: E402
from pipeline.models import EnrichedStory, story_id_for  # noqa: E402
from pipeline.rules.engine import RulesEngine  # noqa: E402
from pipeline.rules.store import AlertStore  # noqa: E402

T0 = datetime(2026, 1, 5, tzinfo=UTC)
PER_STORY = "rules:\n  - id: tesla\n    terms: [Tesla]\n"
SPIKE = PER_STORY + "    spike: {window: 1h, baseline: 7d, factor: 3, min_count: 10}\n"


def stories(count: int, days: float) -> list[EnrichedStory]:
    burst = count // 20
    gap = timedelta(days=days) / (count - burst)
    times = [T0 + k * gap for k in range(count - burst)]
    end = times[-1]
    times += [end + timedelta(minutes=k) for k in range(burst)]
    return [story(n, at) for n, at in enumerate(times)]


def story(n: int, at: datetime) -> EnrichedStory:
    url = f"https://cars.example/{n}"
    text = (
        f"Tesla said on day {n // 100} that deliveries rose, report {n} says; analysts "
        f"weighed figure {n * 7 % 1000} against the quarter's outlook in note {n}."
    )
    return EnrichedStory(
        id=story_id_for(url), url=url, title=f"Tesla headline {n}", text=text,
        text_source="full_text", published=at, first_seen=at, enriched_at=at,
        feed=f"feed-{n % 7}",
    )  # fmt: skip


def run(rules: str, batch: list[EnrichedStory], folder: Path) -> tuple[float, int, int]:
    """(ms per story, alerts raised, spike rows kept)."""
    path = folder / "rules.yaml"
    path.write_text(rules, encoding="utf-8")
    store = AlertStore(folder / "rules.sqlite3")
    engine = RulesEngine(
        path, RulesSettings(throttle_max_alerts=10**9), store, Metrics(CollectorRegistry())
    )
    alerts = 0
    started = time.perf_counter()
    for story in batch:
        alerts += len(engine.process(story))
        engine.confirm_all()
    elapsed = time.perf_counter() - started
    rows = store.spikes.rows("tesla")
    engine.close()
    return 1000 * elapsed / len(batch), alerts, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=3000)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batch = stories(args.stories, args.days)
    plain, spike = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            plain.append(run(PER_STORY, batch, Path(a)))
            spike.append(run(SPIKE, batch, Path(b)))
    plain_ms = statistics.median(r[0] for r in plain)
    spike_ms = statistics.median(r[0] for r in spike)
    print(f"{args.stories} stories over {args.days:g} days (+5 % in a burst), {args.rounds} rounds")
    print(f"per-story rule: {plain_ms:.3f} ms/story, {plain[0][1]} alerts")
    print(
        f"spike rule:     {spike_ms:.3f} ms/story, {spike[0][1]} spike alerts, "
        f"{spike[0][2]} rows kept (buckets + story ids)"
    )
    print(f"ratio spike / per-story: {spike_ms / plain_ms:.2f}x")


if __name__ == "__main__":
    main()
