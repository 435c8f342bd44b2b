"""Shingle scoring of extracted article text against a hand-made ground truth.

This is the measure of the Scrapinghub article-extraction benchmark, which the
corpus README prescribes: both texts are tokenised with `\\w+`, cut into 4-token
shingles, and compared as multisets. Per page, TP/FP/FN are normalised by their
sum so a long story weighs no more than a short one; precision and recall are
then the means over pages of the per-page precision and recall (a page with
nothing predicted has no precision and is left out of that mean, exactly as in
the benchmark's own `evaluate.py`); F1 = 2PR/(P+R).

`pooled` gives the other reading of "normalised, then averaged": the sum of the
normalised TP over the sum of normalised TP+FP (likewise for recall). It is
reported beside the benchmark figures so the two can be compared.

Cross-validation: the extractor's recovery step has a few thresholds (`Tuning`).
Each page is drafted once (`draft_article`: parse, prune, extract) and finished
under every setting of `TUNING_GRID`, which is cheap. `cross_validate` then
chooses, for each of k folds, the setting with the best F1 on the other k-1
folds and scores the held-out fold with it: the figure that predicts unseen
sites. The same code serves bench/extraction_quality.py and the quality test.
This module lives outside the installed package: only the bench and the tests use it.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from statistics import fmean

from pipeline.errors import ExtractionRejected
from pipeline.extractor.text import Draft
from pipeline.extractor.text_recover import Tuning

SHINGLE_SIZE = 4
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class PageCounts:
    """One page's shingle overlap, normalised so tp + fp + fn == 1 (or all zero)."""

    tp: float
    fp: float
    fn: float

    @property
    def precision(self) -> float | None:
        """None when nothing was predicted: such a page says nothing about precision."""
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fp) if self.tp + self.fp > 0 else None

    @property
    def recall(self) -> float | None:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fn) if self.tp + self.fn > 0 else None


@dataclass(frozen=True)
class Score:
    f1: float
    precision: float
    recall: float


@dataclass(frozen=True)
class CorpusPage:
    """One scored page: its raw bytes as fetched and the hand-made article body."""

    id: str
    url: str
    html: bytes
    truth: str


def load_corpus(directory: Path) -> list[CorpusPage]:
    """`ground-truth.json` and `html/<id>.html.gz`, the layout of the benchmark's repository."""
    truth_file = directory / "ground-truth.json"
    if not truth_file.is_file():
        raise FileNotFoundError(f"no extraction corpus at {directory} (expected {truth_file.name})")
    truths = json.loads(truth_file.read_text(encoding="utf-8"))
    return [
        CorpusPage(
            id=page_id,
            url=entry.get("url", ""),
            html=gzip.decompress((directory / "html" / f"{page_id}.html.gz").read_bytes()),
            truth=entry.get("articleBody", ""),
        )
        for page_id, entry in sorted(truths.items())
    ]


def load_own_pages(index: Path, *, held_out: bool) -> list[CorpusPage]:
    """The project's own test pages: `pages.json` names each page's file and true body.

    `held_out` pages were written after the code was frozen; the others were written
    with it, one per failure class. Neither kind is used for tuning.
    """
    entries = json.loads(index.read_text(encoding="utf-8"))
    return [
        CorpusPage(
            id=name,
            url=f"https://{name}.example/story",
            html=(index.parent / entry["file"]).read_bytes(),
            truth=entry["truth"],
        )
        for name, entry in sorted(entries.items())
        if entry.get("held_out", False) == held_out
    ]


def shingles(text: str, size: int = SHINGLE_SIZE) -> Counter[tuple[str, ...]]:
    """A text shorter than `size` tokens still yields one (short) shingle, as upstream does."""
    tokens = _TOKEN.findall(text)
    count = max(1, len(tokens) - size + 1)
    return Counter(tuple(tokens[i : i + size]) for i in range(count) if tokens[i : i + size])


def match_page(truth: str, predicted: str) -> PageCounts:
    """Multiset overlap of the two texts' shingles, normalised by its sum."""
    expected, got = shingles(truth), shingles(predicted)
    tp = sum((expected & got).values())
    fp = sum((got - expected).values())
    fn = sum((expected - got).values())
    total = tp + fp + fn
    return PageCounts(tp / total, fp / total, fn / total) if total else PageCounts(0, 0, 0)


def score(pages: Sequence[PageCounts]) -> Score:
    """The benchmark's figures: means over pages of per-page precision and recall."""
    precision = _mean(p.precision for p in pages)
    recall = _mean(p.recall for p in pages)
    return Score(_f1(precision, recall), precision, recall)


def pooled(pages: Sequence[PageCounts]) -> Score:
    """The alternative reading: sums of the normalised counts, then the ratios."""
    tp = sum(p.tp for p in pages)
    precision = _ratio(tp, sum(p.fp for p in pages))
    recall = _ratio(tp, sum(p.fn for p in pages))
    return Score(_f1(precision, recall), precision, recall)


def _ratio(hits: float, misses: float) -> float:
    return hits / (hits + misses) if hits + misses else 0.0


def _mean(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None]
    return fmean(present) if present else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# Every setting the cross-validation may choose from; the first of equals wins, so the
# most conservative values come first.
TUNING_GRID: tuple[Tuning, ...] = tuple(
    Tuning(link, chars, lead, tail, twin, repair)
    for repair, link, chars, lead, tail, twin in product(
        (True, False), (0.0, 0.3, 0.6), (1, 40), (10**9, 150, 80), (False, True), (200, 600, 10**9)
    )
)


def finished_text(draft: Draft, tuning: Tuning) -> str:
    """A rejected page scores as an empty extraction, as it would reach the rules stage."""
    try:
        return draft.finish(tuning).text
    except ExtractionRejected:
        return ""


def counts_table(
    pages: Sequence[CorpusPage], drafts: Sequence[Draft], grid: Sequence[Tuning] = TUNING_GRID
) -> list[list[PageCounts]]:
    """Per page, its counts under every setting (each distinct text is scored once)."""
    table = []
    for page, draft in zip(pages, drafts, strict=True):
        seen: dict[str, PageCounts] = {}
        row = []
        for tuning in grid:
            text = finished_text(draft, tuning)
            if text not in seen:
                seen[text] = match_page(page.truth, text)
            row.append(seen[text])
        table.append(row)
    return table


def best_setting(table: Sequence[Sequence[PageCounts]], rows: Sequence[int]) -> int:
    """The index of the setting with the best F1 over `rows` (the first of equals)."""
    settings = range(len(table[0]))
    f1s = [score([table[r][s] for r in rows]).f1 for s in settings]
    return max(settings, key=lambda s: (f1s[s], -s))


def cross_validate(
    table: Sequence[Sequence[PageCounts]], k: int = 5
) -> tuple[list[PageCounts], list[int]]:
    """Held-out counts of every page, each fold finished with the setting its complement chose.

    Folds are page i -> fold i % k in corpus order (ids are content hashes, so this
    is an arbitrary but fixed split). Returns the counts and the setting per fold.
    """
    held_out: list[PageCounts] = [PageCounts(0, 0, 0)] * len(table)
    chosen = []
    for fold in range(k):
        train = [i for i in range(len(table)) if i % k != fold]
        setting = best_setting(table, train)
        chosen.append(setting)
        for i in range(fold, len(table), k):
            held_out[i] = table[i][setting]
    return held_out, chosen
