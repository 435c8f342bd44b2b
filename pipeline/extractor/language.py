"""The language of a story: declared by its page or feed, or detected from its text.

A page's markup (`<html lang>`, `og:locale`, `Content-Language`) and a feed's
`<language>` are right for nearly every story and cost nothing, so they are
taken first, but only when the text is written in the script the language uses:
a template that says `lang="en"` over a page in Cyrillic or Chinese is not
believed. Otherwise the text itself is asked (py3langid: a naive Bayes model of
byte n-grams that ships inside its wheel, loaded once per process on first use,
about a millisecond per story), and failing that the configured default.

So an English page that says it is English never pays for detection, which
keeps the per-story cost of language work on English pages at a few string
checks (`bench/language_cost.py`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pipeline.models import LanguageSource

# What detection may answer: the languages of the world's press that newsmon can stem,
# segment or recognise entities in, and the large ones besides. A closed set keeps the
# detector from answering a dialect ("wuu" for Mandarin) or a rare language for a short,
# ambiguous text, and makes it faster.
DETECTABLE = (
    "af", "ar", "az", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "eo",
    "es", "et", "eu", "fa", "fi", "fr", "ga", "gl", "gu", "he", "hi", "hr", "hu", "hy", "id",
    "is", "it", "ja", "ka", "kk", "km", "kn", "ko", "lt", "lv", "mk", "ml", "mn", "mr", "ms",
    "ne", "nl", "no", "pa", "pl", "ps", "pt", "ro", "ru", "si", "sk", "sl", "sq", "sr", "sv",
    "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "uz", "vi", "zh",
)  # fmt: skip
_KNOWN = frozenset(DETECTABLE)
SAMPLE_CHARS = 2_000  # of the text, for detection
SCRIPT_SAMPLE_CHARS = 600  # of the text, for the script check: a page's script shows at once
MIN_DETECT_LETTERS = 12  # fewer letters than this: too little to tell
MIN_CONFIDENCE = 0.8

# Scripts, by the ranges of their letters. Latin is counted apart (`_LATIN_TABLE`).
_SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "cyrillic": ((0x0400, 0x04FF),),
    "arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "han": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)),
    "kana": ((0x3040, 0x30FF), (0xFF66, 0xFF9F)),
    "hangul": ((0xAC00, 0xD7AF), (0x1100, 0x11FF)),
    "greek": ((0x0370, 0x03FF),),
    "hebrew": ((0x0590, 0x05FF),),
    "devanagari": ((0x0900, 0x097F),),
    "thai": ((0x0E00, 0x0E7F),),
}
_LATIN_TABLE = np.array(
    [chr(c).isalpha() and (c < 0x80 or c >= 0xC0) for c in range(0x250)], dtype=bool
)
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")
# The script each non-Latin language is written in (a language may have two).
_LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("ru", "uk", "bg", "mk", "be", "kk", "ky", "mn", "tg", "tt", "ba"),
        frozenset({"cyrillic"}),
    ),
    "sr": frozenset({"cyrillic", "latin"}),
    **dict.fromkeys(("ar", "fa", "ur", "ps", "ug", "sd"), frozenset({"arabic"})),
    "zh": frozenset({"han"}),
    "ja": frozenset({"kana"}),
    "ko": frozenset({"hangul"}),
    "el": frozenset({"greek"}),
    **dict.fromkeys(("he", "yi"), frozenset({"hebrew"})),
    **dict.fromkeys(("hi", "mr", "ne", "sa"), frozenset({"devanagari"})),
    "th": frozenset({"thai"}),
}  # fmt: skip
_LATIN = frozenset({"latin"})


@dataclass(frozen=True)
class LanguageDecision:
    """A story's language (ISO 639-1, or None when nothing says) and how it was decided."""

    language: str | None
    source: LanguageSource


def language_label(language: str | None) -> str:
    """The metric label of a language: its code when detection knows it, else 'other'
    ('unknown' when none was decided), so a page declaring `lang="xx-pirate"` adds no series."""
    if language is None:
        return "unknown"
    return language if language in _KNOWN else "other"


def decide_language(
    text: str, *, page: str | None, feed: str | None, default: str | None
) -> LanguageDecision:
    """The page's declared language, else the feed's, when the text's script fits it;
    else what detection says with confidence; else `default`."""
    script = dominant_script(text[:SCRIPT_SAMPLE_CHARS])
    if page and fits_script(page, script):
        return LanguageDecision(page, "page")
    if feed and fits_script(feed, script):
        return LanguageDecision(feed, "feed")
    detected = detect_language(text[:SAMPLE_CHARS])
    if detected is not None:
        return LanguageDecision(detected, "detected")
    return LanguageDecision(default, "default")


def dominant_script(sample: str) -> str | None:
    """The script most of the sample's letters are written in (None: no letters).
    Japanese mixes kanji and kana; any real share of kana makes it 'kana'."""
    if sample.isascii():
        return "latin" if _LATIN_LETTER.search(sample) else None
    codes = np.frombuffer(sample.encode("utf-32-le"), dtype=np.uint32)
    high = codes[codes >= 0x370]
    high = high[(high < 0x2000) | (high > 0x20CF)]  # not punctuation (quotes, dashes), currency
    if not high.size:
        return "latin" if _LATIN_LETTER.search(sample) else None
    counts = {
        name: sum(int(np.count_nonzero((high >= lo) & (high <= hi))) for lo, hi in ranges)
        for name, ranges in _SCRIPTS.items()
    }
    if counts["kana"] * 10 >= counts["han"] + counts["kana"] > 0:
        counts["kana"] += counts["han"]
        counts["han"] = 0
    counts["latin"] = int(np.count_nonzero(_LATIN_TABLE[codes[codes < 0x250]]))
    script, count = max(counts.items(), key=lambda item: item[1])
    return script if count else None


def fits_script(language: str, script: str | None) -> bool:
    """Can a text mostly in `script` be in `language`? (No letters: nothing contradicts.)"""
    return script is None or script in _LANGUAGE_SCRIPTS.get(language, _LATIN)


def detect_language(sample: str) -> str | None:
    """The language detection is confident of, or None (too short, too mixed)."""
    if len(_letters(sample)) < MIN_DETECT_LETTERS:
        return None
    with _LOCK:  # py3langid does not say its classifier is thread-safe: one text at a time
        language, confidence = _identifier().classify(sample)
    return str(language) if confidence >= MIN_CONFIDENCE else None


_WORD_CHARS = re.compile(r"[^\W\d_]")
_LOCK = threading.Lock()


def _letters(sample: str) -> list[str]:
    return _WORD_CHARS.findall(sample)


@lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid's model, loaded on first need (about 1 s and 75 MB resident): a process
    whose pages all declare their language never loads it."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(DETECTABLE))
    # It keeps the 142-language table to restrict again later; we never do: let it go (28 MB).
    identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
    return identifier
