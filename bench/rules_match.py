"""Per-story rule matching time with 10 and with 10,000 rules, against a regex-per-rule baseline.

    /tmp/venv/bin/python bench/rules_match.py [--rounds 5] [--baseline-stories 12] [--check]

Stories: the 91 article bodies of ../shared/corpora/article-extraction plus the
seed story (about 4,400 chars each). Rules: the 10-rule set is the three seed
rules and the shipped examples (enabled) plus four more; the 10,000-rule set
is those ten and 9,990 generated ones, shaped like a real watch list: mostly
names that a given story does not mention (made-up company and person names,
wildcards, exact terms, rules with entity types, all and none, and three in ten
with proximity or field scoping: `near` within 10 words, `same_sentence`, a term
scoped to the title), and 2 % of
terms taken from the corpus vocabulary so that rules do fire. The baseline is
what a simple implementation does: one compiled case-insensitive `\\b...\\b`
regex per rule, searched in each field of each story (no inflection, no entity
check: strictly less work than the matcher does). It is timed on a sample of
stories at 10,000 rules to keep the run short.

Figures are per story, median of `--rounds` rounds, and are printed as ratios
against each other; the target is judged on CPU time (as `rules_load.py` does: on a
shared machine the wall clock also counts other processes' turns), the wall ratio
printed beside it. Targets: 10,000 rules cost <= 2x what 10 rules cost, and
>= 50x less than the regex baseline at 10,000 rules.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import Rule, load_rules  # noqa: E402
from pipeline.config.rules import term_text  # noqa: E402
from pipeline.models import EnrichedStory, story_id_for  # noqa: E402
from pipeline.rules.compile import compile_rules  # noqa: E402
from pipeline.rules.match import FIELDS, match_story  # noqa: E402
from pipeline.rules.tokens import words  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora"
SEED_FIXTURE = ROOT / "tests" / "testdata" / "rules" / "seed-story.enriched.json"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ran",
    "tes",
    "vor",
    "qui",
    "zel",
    "bra",
    "dun",
    "fe",
    "gor",
    "hal",
    "ix",
    "jun",
    "nor",
    "pel",
    "sto",
    "tra",
    "ver",
    "wyn",
]
EXTRA_RULES = [
    Rule(id="musk", terms=["Elon Musk"], entity_types=["PERSON"]),
    Rule(id="ukraine-war", terms=["Ukraine"], all_terms=["war"]),
    Rule(id="ransomware", terms=["ransomware", "data breach*"]),
    Rule(id="elections", terms=["election"], none_terms=["student council"]),
    Rule.model_validate(
        {"id": "musk-twitter", "terms": ["Musk"], "near": {"terms": ["Twitter"], "within": 10}}
    ),
    Rule.model_validate({"id": "tesla-recall", "terms": ["Tesla"], "same_sentence": ["recall"]}),
]


def load_stories() -> list[EnrichedStory]:
    truth = json.loads((CORPUS / "article-extraction" / "ground-truth.json").read_text())
    stories = [_story(page["url"], page["articleBody"]) for page in truth.values()]
    if not SEED_FIXTURE.exists():  # an enriched copy of the seed story, when there is one
        return stories
    seed = EnrichedStory.model_validate(json.loads(SEED_FIXTURE.read_text(encoding="utf-8")))
    return [seed, *stories]


def _story(url: str, text: str) -> EnrichedStory:
    title, _, body = text.partition("\n")
    return EnrichedStory(
        id=story_id_for(url), url=url, title=title[:200], text=body, text_source="full_text",
        published=WHEN, first_seen=WHEN, enriched_at=WHEN, feed="bench",
    )  # fmt: skip


def base_rules() -> list[Rule]:
    shipped = load_rules(ROOT / "configs" / "rules.yaml")
    return [r.model_copy(update={"enabled": True}) for r in shipped] + EXTRA_RULES


def made_up_name(rng: random.Random) -> str:
    parts = rng.randint(1, 3)
    return " ".join(
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        for _ in range(parts)
    )


def generated_rules(
    count: int, vocabulary: Sequence[str], rng: random.Random, *, proximity: bool = True
) -> list[Rule]:
    """`proximity=False`: the same draws, but the proximity shapes stay one-term rules."""
    rules = []
    for n in range(count):
        real = rng.random() < 0.02
        term = rng.choice(vocabulary) if real else made_up_name(rng)
        shape = n % 10 if proximity or n % 10 < 7 else 0
        fields: dict[str, object] = {"id": f"gen-{n}", "terms": [term]}
        if shape == 1:
            fields["terms"] = [term, made_up_name(rng)]
        elif shape == 2:
            fields["entity_types"] = ["ORG"]
        elif shape == 3:
            fields["exact"] = True
        elif shape == 4:
            fields["terms"] = [term.split()[0][:5] + "*"]
        elif shape == 5:
            fields["none"] = [made_up_name(rng)]
        elif shape == 6:
            fields["all"] = [rng.choice(vocabulary)]
        elif shape == 7:
            fields["near"] = {"terms": [rng.choice(vocabulary), made_up_name(rng)], "within": 10}
        elif shape == 8:
            fields["same_sentence"] = [rng.choice(vocabulary)]
        elif shape == 9:
            fields["terms"] = [{"term": term, "in": ["title"]}, made_up_name(rng)]
        rules.append(Rule.model_validate(fields))
    return rules


def corpus_vocabulary(stories: Sequence[EnrichedStory]) -> list[str]:
    """Words of 5+ letters that are neither everywhere nor one-offs, as watch lists have."""
    df: Counter[str] = Counter()
    for story in stories:
        df.update({w for w in words(story.text) if len(w) >= 5 and w.isalpha()})
    return sorted(w for w, n in df.items() if 2 <= n <= 5)


Matcher = Callable[[EnrichedStory], object]


def per_story_seconds(
    runs: Sequence[Matcher], stories: Sequence[EnrichedStory], rounds: int
) -> list[float]:
    """Median wall seconds per story of each matcher; rounds interleave them, so that a
    busy machine slows them alike."""
    return [wall for wall, _ in per_story_times(runs, stories, rounds)]


def per_story_times(
    runs: Sequence[Matcher], stories: Sequence[EnrichedStory], rounds: int
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per story of each matcher, medians of interleaved rounds. On a
    shared machine the wall clock also counts other processes' turns; CPU time less so."""
    walls: list[list[float]] = [[] for _ in runs]
    cpus: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, wall, cpu in zip(runs, walls, cpus, strict=True):
            started, cpu_started = time.perf_counter(), time.process_time()
            for story in stories:
                run(story)
            cpu.append((time.process_time() - cpu_started) / len(stories))
            wall.append((time.perf_counter() - started) / len(stories))
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus, strict=True)]


def regex_baseline(rules: Sequence[Rule]) -> Callable[[EnrichedStory], list[str]]:
    compiled = [
        (r.id, re.compile(_pattern([term_text(t) for t in r.terms]), re.IGNORECASE)) for r in rules
    ]

    def run(story: EnrichedStory) -> list[str]:
        texts = [getattr(story, f) for f in FIELDS]
        return [rid for rid, rx in compiled if any(rx.search(t) for t in texts)]

    return run


def _pattern(terms: Sequence[str]) -> str:
    parts = [re.escape(t[:-1]) + r"\w*" if t.endswith("*") else re.escape(t) for t in terms]
    return r"\b(?:" + "|".join(parts) + r")\b"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--baseline-stories", type=int, default=8)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    stories = load_stories()
    rng = random.Random(20240601)
    small = base_rules()
    vocabulary = corpus_vocabulary(stories)
    large = small + generated_rules(10_000 - len(small), vocabulary, rng)
    plain = small + generated_rules(
        10_000 - len(small), vocabulary, random.Random(20240601), proximity=False
    )
    compiled_plain = compile_rules(plain)
    started = time.perf_counter()
    compiled_large = compile_rules(large)
    compile_seconds = time.perf_counter() - started
    compiled_small = compile_rules(small)

    for compiled in (compiled_small, compiled_large, compiled_plain):  # warm the stem cache
        for story in stories:
            match_story(story, compiled)
    times = per_story_times(
        [
            lambda s: match_story(s, compiled_small),
            lambda s: match_story(s, compiled_large),
            regex_baseline(small),
            lambda s: match_story(s, compiled_plain),
        ],
        stories,
        args.rounds,
    )
    (t_small, c_small), (t_large, c_large), (b_small, _), (t_plain, c_plain) = times
    sample = stories[: args.baseline_stories]
    [b_large] = per_story_seconds([regex_baseline(large)], sample, max(1, args.rounds // 3))
    fired_small = sum(len(match_story(s, compiled_small)) for s in stories) / len(stories)
    fired_large = sum(len(match_story(s, compiled_large)) for s in stories) / len(stories)

    print(
        f"stories: {len(stories)} (mean {statistics.mean(len(s.text) for s in stories):.0f} chars)"
    )
    print(
        f"rules fired per story: {fired_small:.2f} with {len(small)} rules, {fired_large:.2f} with {len(large)}"
    )
    print(f"compile {len(large)} rules: {compile_seconds:.2f} s")
    print(f"matcher,  {len(small):>6} rules: {t_small * 1e3:8.3f} ms/story")
    print(f"matcher,  {len(large):>6} rules: {t_large * 1e3:8.3f} ms/story")
    print(f"regex,    {len(small):>6} rules: {b_small * 1e3:8.3f} ms/story")
    print(f"regex,    {len(large):>6} rules: {b_large * 1e3:8.3f} ms/story ({len(sample)} stories)")
    print(f"matcher,  {len(plain):>6} rules without proximity: {t_plain * 1e3:8.3f} ms/story")
    print(f"matcher 10,000 without proximity vs 10 rules: {t_plain / t_small:.2f}x")
    print(
        f"CPU time: {c_small * 1e3:.3f} -> {c_large * 1e3:.3f} ms/story; "
        f"without proximity {c_plain * 1e3:.3f} ms ({c_plain / c_small:.2f}x)"
    )
    growth = c_large / c_small
    speedup = b_large / t_large
    print(f"matcher 10,000 vs 10 rules, wall: {t_large / t_small:.2f}x")
    print(f"matcher 10,000 vs 10 rules, CPU:  {growth:.2f}x   (target <= 2x)")
    print(f"regex baseline vs matcher at 10,000 rules: {speedup:.0f}x faster   (target >= 50x)")
    ok = growth <= 2.0 and speedup >= 50.0
    print("targets: met" if ok else "targets: MISSED")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
