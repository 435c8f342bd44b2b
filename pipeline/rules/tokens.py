"""Words of a story or a watch term, as the matcher sees them.

Story text and rule terms go through the same tokeniser and the same stemmer,
so a term meets the text on equal terms: `\\w+` runs (so "Tesla's" holds the
word "Tesla" and "Teslaville" does not), case-folded, and, unless a rule asks
for exact words, reduced to their Snowball (Porter2) stem so that
"unbundling", "unbundle" and "unbundled" all meet at "unbundl".

A field becomes a *word stream*: its folded words joined by single spaces and
framed by spaces (" tesla s factory "). Word i starts after the i-th space,
which is how a hit in the stream is mapped back to char offsets in the field.
Building streams is the per-story cost of matching, so the common case (words
that are all ASCII, as in most English text even with typographic quotes)
stays in C: one `findall`, one `lower`, dict lookups for the stems, numpy for
the word offsets.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
import Stemmer

WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))
_STEMMER = Stemmer.Stemmer("english")
_ASCII_WORD_CHARS = np.array([WORD.fullmatch(chr(c)) is not None for c in range(128)])
MEMO_WORDS = 500_000


class _StemMemo(dict[str, str]):
    """Word -> stem. News vocabulary repeats, so after warm-up a stem costs one dict lookup
    (5x faster than asking the stemmer, even with its own cache). Bounded: cleared when full.
    Not thread-safe, like the stemmer: one engine, one thread."""

    def __missing__(self, word: str) -> str:
        if len(self) >= MEMO_WORDS:
            self.clear()
        found: str = _STEMMER.stemWord(word)
        self[word] = found
        return found


_STEMS = _StemMemo()


def fold(word: str) -> str:
    """Case-insensitive and compatibility-normalised ('ﬁnance' meets 'finance'), one word."""
    return "".join(unicodedata.normalize("NFKC", word).casefold().split())


def words(text: str) -> list[str]:
    """The folded words of a text."""
    return FieldWords(text).surface.split()


def stem(word: str) -> str:
    return _STEMS[word]


def stem_stream(surface: str) -> str:
    """The stems of a surface stream's words, joined the same way."""
    if not surface:
        return ""
    return " ".join(map(_STEMS.__getitem__, surface.split(" ")))


class FieldWords:
    """A field's words as streams for the automata, and where each word is in the field."""

    def __init__(self, text: str) -> None:
        self.text = text
        found = WORD.findall(text)
        joined = " ".join(found)
        self.surface = joined.lower() if joined.isascii() else _fold_joined(joined, len(found))
        self._spans: tuple[list[int], list[int]] | None = None

    def stems(self) -> str:
        return stem_stream(self.surface)

    def spans(self) -> tuple[list[int], list[int]]:
        """(starts, ends) of the words, computed on first use (only fields with hits need it)."""
        if self._spans is None:
            self._spans = _spans(self.text)
        return self._spans


def _fold_joined(joined: str, count: int) -> str:
    """Fold all words in one call; word by word only if that changed where words split."""
    if count == 0:
        return ""
    folded = " ".join(unicodedata.normalize("NFKC", joined).casefold().split(" "))
    if folded.count(" ") == count - 1 and "  " not in folded:
        return folded
    return " ".join(fold(w) or "_" for w in joined.split(" "))  # never empty: word i after space i


@lru_cache(maxsize=65_536)
def _is_word_char(code: int) -> bool:
    return WORD.fullmatch(chr(code)) is not None


def _spans(text: str) -> tuple[list[int], list[int]]:
    """Word edges found with numpy, ~9x faster than walking `finditer` in Python."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    is_word = np.zeros(len(codes) + 2, dtype=bool)
    low = codes < 128
    is_word[1:-1][low] = _ASCII_WORD_CHARS[codes[low]]
    if not low.all():
        high = ~low
        letters = [c for c in np.unique(codes[high]).tolist() if _is_word_char(c)]
        is_word[1:-1][high] = np.isin(codes[high], letters)
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    starts: list[int] = edges[0::2].tolist()
    ends: list[int] = edges[1::2].tolist()
    return starts, ends


def gap_kind(gap: str) -> str:
    """What separates two words, reduced to what matters for phrase matching.

    Whitespace and hyphens join words ("US-China" meets "US China"); any other
    punctuation ("Qin. Gang") or a paragraph break keeps them apart.
    """
    if _PARAGRAPH_BREAK.search(gap):
        return "\u00b6"
    kept = "".join(gap.split()).translate(_DASHES)
    return "" if kept in ("", "-") else kept


# A sentence ends at . ! ? (closing quotes and brackets may follow) before white space
# and a capital, a digit or an opening quote; or at a paragraph break. Not after a
# title or an abbreviation ("Mr. Musk", "Tesla Inc. said") or an initial ("J. Smith").
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u024f]))"
    r"|\n\s*\n"
)
_ABBREVIATIONS = frozenset(
    (
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "col", "lt", "sgt", "capt",
    "gov", "sen", "rep", "rev", "hon", "pres", "inc", "corp", "co", "ltd", "plc", "llc", "bros",
    "vs", "etc", "al", "fig", "approx", "dept", "est", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "u.n", "e.g", "i.e",
    )
)  # fmt: skip
_LAST_WORD = re.compile(r"([\w.]+)[.!?][\"'\u201d\u2019)\]]*$")


def sentence_starts(text: str) -> list[int]:
    """Char offsets where the sentences of a text begin (the first is 0)."""
    return [0, *(m.end() for m in _SENTENCE_END.finditer(text) if _ends_sentence(text, m))]


def sentence_break(text: str, start: int, end: int) -> bool:
    """Does a sentence end between text[start] and text[end]?

    A cheap splitter, good enough to say whether two words share a sentence; the
    stories carry no sentences of their own (NER's are not kept). Only the text
    between the two words is looked at, so a long article costs no more than a short one.
    """
    for m in _SENTENCE_END.finditer(text, start, min(len(text), end + 2)):
        if m.end() > end:
            return False
        if _ends_sentence(text, m):
            return True
    return False


def _ends_sentence(text: str, m: re.Match[str]) -> bool:
    if _PARAGRAPH_BREAK.search(m.group()):
        return True
    before = _LAST_WORD.search(text, max(0, m.start() - 24), m.start())
    return not (before and _is_abbreviation(before.group(1)))


def _is_abbreviation(word: str) -> bool:
    """'Inc', 'U.S', 'J' (an initial): a full stop after them rarely ends a sentence."""
    folded = word.casefold()
    return folded in _ABBREVIATIONS or (len(word) == 1 and word.isupper())
