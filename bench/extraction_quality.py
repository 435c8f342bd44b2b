"""Extraction quality: newsmon's `extract_article` against plain trafilatura, in one run.

Run from the project root:

    /tmp/venv/bin/python bench/extraction_quality.py [--corpus DIR] [--rounds N]

Corpus: ../shared/corpora/article-extraction (91 real pages and a hand-made
article body for each; read in place, never copied into the repository).

Scoring, as the corpus README prescribes and as the Scrapinghub benchmark's own
`evaluate.py` computes it (`pipeline/extractor/text_score.py`):
- both texts are tokenised with the regex `\\w+` and cut into 4-token shingles;
- per page, TP/FP/FN are the multiset overlaps of the two shingle counts,
  divided by TP+FP+FN so that every page weighs the same;
- precision is the mean over pages of the per-page TP/(TP+FP) (pages where
  nothing was extracted have no precision and are left out of that mean, as
  upstream), recall the mean of TP/(TP+FN); F1 = 2PR/(P+R).
The README's "precision and recall are the means over pages" can also be read as
pooling the normalised counts first (P = sum TP / (sum TP + sum FP)); those
figures are printed too, as "pooled". On this corpus the two agree to ~0.001.

Timing: both extractors run on each page in turn, in the same process and round;
the figure is this process's CPU time per page (`time.process_time`, so other
work on a shared machine does not count), the median over rounds. Exit status 0
unless the corpus is missing (2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trafilatura

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.errors import ExtractionRejected  # noqa: E402
from pipeline.extractor.text import extract_article  # noqa: E402
from pipeline.extractor.text_score import (  # noqa: E402
    CorpusPage,
    PageCounts,
    Score,
    load_corpus,
    match_page,
    pooled,
    score,
)

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "article-extraction"
Extractor = Callable[[CorpusPage], str]


@dataclass
class Contender:
    name: str
    extract: Extractor
    texts: dict[str, str]
    seconds: list[float]


def plain_trafilatura(page: CorpusPage) -> str:
    return trafilatura.extract(page.html) or ""


def newsmon(page: CorpusPage) -> str:
    """A rejected page scores as an empty extraction, as it would reach the rules stage."""
    try:
        return extract_article(page.html, page.url).text
    except ExtractionRejected:
        return ""


def run_round(pages: Sequence[CorpusPage], contenders: Sequence[Contender]) -> None:
    """Each page goes to every contender in turn; each contender's time is summed."""
    totals = [0.0] * len(contenders)
    for page in pages:
        for index, contender in enumerate(contenders):
            start = time.process_time()
            contender.texts[page.id] = contender.extract(page)
            totals[index] += time.process_time() - start
    for contender, total in zip(contenders, totals, strict=True):
        contender.seconds.append(total / len(pages))


def counts_of(pages: Sequence[CorpusPage], contender: Contender) -> list[PageCounts]:
    return [match_page(page.truth, contender.texts[page.id]) for page in pages]


def print_table(pages: Sequence[CorpusPage], contenders: Sequence[Contender]) -> None:
    print(f"{len(pages)} pages, {len(contenders[0].seconds)} round(s)\n")
    print(
        f"{'extractor':<28} {'F1':>7} {'prec.':>7} {'recall':>7} {'s/page':>9}   pooled F1 / P / R"
    )
    for contender in contenders:
        counts = counts_of(pages, contender)
        main, alt = score(counts), pooled(counts)
        seconds = statistics.median(contender.seconds)
        print(
            f"{contender.name:<28} {_figures(main)} {seconds:>9.4f}   "
            f"{alt.f1:.4f} / {alt.precision:.4f} / {alt.recall:.4f}"
        )
    base, ours = (statistics.median(c.seconds) for c in contenders)
    print(f"\ntime ratio (newsmon / plain trafilatura): {ours / base:.2f}x")


def _figures(result: Score) -> str:
    return f"{result.f1:>7.4f} {result.precision:>7.4f} {result.recall:>7.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        pages = load_corpus(args.corpus)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    contenders = [
        Contender("(a) trafilatura.extract", plain_trafilatura, {}, []),
        Contender("(b) newsmon extract_article", newsmon, {}, []),
    ]
    for _ in range(max(1, args.rounds)):
        run_round(pages, contenders)
    print_table(pages, contenders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
