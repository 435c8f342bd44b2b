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
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

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
