"""Words of a story or a watch term, as the matcher sees them.

Story text and rule terms go through the same tokeniser and the same stemmer,
so a term meets the text on equal terms: runs of word characters (so "Tesla's"
holds the word "Tesla" and "Teslaville" does not; combining marks stay inside
their word, so Hindi or vowelled Arabic is not cut apart), case-folded, and,
unless a rule asks for exact words, reduced to their Snowball stem in the
story's language, so that "unbundling", "unbundle" and "unbundled" all meet at
"unbundl", and "Цинь Гана" meets "Цинь Ган".

Chinese, Japanese and Korean are written without spaces between words (Korean
puts them between phrases), so each of their characters is a word of its own:
a term matches the same character sequence anywhere in a sentence ("秦刚" in
"外交部长秦刚会见"). Where a script shows word edges, a hit must respect them
(`script_bounded`): a katakana term is not part of a longer katakana word, and
a Hangul term starts a Korean word (particles may follow). Folding also makes
spellings that readers treat as one meet: Russian "ё" is its "e", and Arabic diacritics,
tatweel and the alef, yeh and teh marbuta variants are normalised as Lucene's
Arabic normaliser does.

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
import numpy.typing as npt
import Stemmer

# Where the characters that are each a word live: Hangul jamo, CJK radicals to the end of
# the unified ideographs (kana and CJK symbols included), Hangul syllables, compatibility
# ideographs, half-width katakana, and the supplementary ideographs. The word characters
# in these ranges are words of one character; their punctuation (。、「」) is not a word.
CJK = "\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
# Combining marks (not `\w` in Python) that belong inside a word: Latin and Cyrillic
# accents written apart, Hebrew and Arabic vowels, Indic vowel signs, Thai marks.
MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u0900-\u0963\u0966-\u0dff\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"
)
_LETTER = f"[^\\W{CJK}]"  # a word character that is not CJK
_ONE_CJK = rf"(?=\w)[{CJK}]"  # a CJK word character
# A word: a run of letters/digits and marks, or one CJK character. (Written so that the
# common case is one character-class loop: as fast as `\w+` on English text.)
WORD = re.compile(
    rf"{_LETTER}+(?:[{MARKS}]+{_LETTER}*)*|[{MARKS}]+{_LETTER}*(?:[{MARKS}]+{_LETTER}*)*|{_ONE_CJK}"
)
_WORD_CHAR = re.compile(rf"{_LETTER}|[{MARKS}]|{_ONE_CJK}")
# Text with none of these characters (most Latin, Cyrillic, Greek text) has the same words
# under plain `\w+`, which is what it is cut with: one scan for them costs less than the
# alternatives of WORD at every non-word character.
_SPECIAL = re.compile(f"[{MARKS}{CJK}]")
_PLAIN_WORD = re.compile(r"\w+")
_CJK_CHAR = re.compile(_ONE_CJK)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Hyphens and dashes join words as a hyphen does; ZWNJ and ZWJ (Persian, Indic, emoji) too.
_DASHES = str.maketrans(
    {**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"), "\u200c": "", "\u200d": ""}
)
_ASCII_WORD_CHARS = np.array([_WORD_CHAR.fullmatch(chr(c)) is not None for c in range(128)])
MEMO_WORDS = 500_000

# ISO 639-1 code -> Snowball algorithm (PyStemmer). A language not here is not stemmed:
# its words match as written (case-folded), as do CJK characters.
SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech",
    "da": "danish", "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "hi": "hindi",
    "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "no": "norwegian", "nb": "norwegian", "nn": "norwegian", "fa": "persian",
    "pl": "polish", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian",
    "st": "sesotho", "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish",
    "yi": "yiddish",
}  # fmt: skip
DEFAULT_STEMMING = "en"  # a story whose language is not known: stemmed as English, as before
UNSTEMMED = ""  # the stemming of a language Snowball has no algorithm for


def stemming_for(language: str | None) -> str:
    """The stemmer a story's words go through: its language's, English when the language
    is not known (what newsmon always did), none ("") for a language Snowball lacks."""
    if language is None:
        return DEFAULT_STEMMING
    return language if language in SNOWBALL else UNSTEMMED


class _StemMemo(dict[str, str]):
    """Word -> stem in one language. News vocabulary repeats, so after warm-up a stem costs
    one dict lookup (5x faster than asking the stemmer, even with its own cache). Bounded:
    cleared when full. Not thread-safe, like the stemmer: one engine, one thread."""

    def __init__(self, language: str) -> None:
        super().__init__()
        algorithm = SNOWBALL.get(language)
        self._stem_word = Stemmer.Stemmer(algorithm).stemWord if algorithm else str

    def __missing__(self, word: str) -> str:
        if len(self) >= MEMO_WORDS:
            self.clear()
        found: str = self._stem_word(word)
        self[word] = found
        return found


_MEMOS: dict[str, _StemMemo] = {}


def _memo(stemming: str) -> _StemMemo:
    memo = _MEMOS.get(stemming)
    if memo is None:
        memo = _MEMOS[stemming] = _StemMemo(stemming)
    return memo


_STEMS = _memo(DEFAULT_STEMMING)

# Spellings a reader treats as the same letter, folded after case folding: Russian ё;
# Arabic as Lucene's ArabicNormalizer (alef variants, alef maksura, teh marbuta, tatweel
# and the short vowels removed).
_SAME_LETTERS: dict[int, str | None] = {
    0x0451: "\u0435", 0x0623: "\u0627", 0x0625: "\u0627", 0x0622: "\u0627", 0x0649: "\u064a",
    0x0629: "\u0647", 0x0640: None, 0x0670: None,
    **dict.fromkeys(range(0x064B, 0x0653)),
}  # fmt: skip


_HAS_SAME_LETTERS = re.compile("[\u0451\u0622-\u0670]")


def _same_letters(folded: str) -> str:
    """`_SAME_LETTERS` applied, only to text that has one (`translate` costs ~40 ns a char)."""
    return folded.translate(_SAME_LETTERS) if _HAS_SAME_LETTERS.search(folded) else folded


def fold(word: str) -> str:
    """Case-insensitive and compatibility-normalised ('ﬁnance' meets 'finance'), one word."""
    return "".join(_same_letters(unicodedata.normalize("NFKC", word).casefold()).split())


def words(text: str) -> list[str]:
    """The folded words of a text."""
    return FieldWords(text).surface.split()


def stem(word: str, stemming: str = DEFAULT_STEMMING) -> str:
    """A folded word's stem in a language (`stemming_for`)."""
    return _STEMS[word] if stemming == DEFAULT_STEMMING else _memo(stemming)[word]


def stem_stream(surface: str, stemming: str = DEFAULT_STEMMING) -> str:
    """The stems of a surface stream's words, joined the same way."""
    if not surface:
        return ""
    if stemming == UNSTEMMED:
        return surface
    memo = _STEMS if stemming == DEFAULT_STEMMING else _memo(stemming)
    return " ".join(map(memo.__getitem__, surface.split(" ")))


# A field's word edges: the char offsets where its words start, and where they end.
WordEdges = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


class FieldWords:
    """A field's words as streams for the automata, and where each word is in the field."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.special = False  # has CJK characters or combining marks
        self._edges: WordEdges | None = None
        found = _PLAIN_WORD.findall(text)
        joined = " ".join(found)
        # every word character is ASCII (the rest, if any, typographic quotes and dashes)
        self.ascii_words = joined.isascii()
        if self.ascii_words:  # most English text: as cheap as it ever was
            self.surface = joined.lower()
            return
        high = _high_chars(text)
        if any(map(_is_special, high)):
            self.special = True
            found = WORD.findall(text)
            joined = " ".join(found)
        same = any(c in (0x0401, 0x0451) or 0x0622 <= c <= 0x0670 for c in high)
        self.surface = _fold_joined(joined, len(found), same_letters=same)

    def stems(self, stemming: str = DEFAULT_STEMMING) -> str:
        return stem_stream(self.surface, stemming)

    def spans(self) -> tuple[list[int], list[int]]:
        """(starts, ends) of the words, as lists."""
        starts, ends = self.edges()
        return starts.tolist(), ends.tolist()

    def edges(self) -> WordEdges:
        """(starts, ends) of the words as arrays, computed on first use (only fields with
        hits need them) and read an item at a time: a hit needs two or three of the field's
        thousand words, and making Python ints of all of them cost more than finding them."""
        if self._edges is None:
            self._edges = _edges(self.text, special=self.special, ascii_words=self.ascii_words)
        return self._edges


def _fold_joined(joined: str, count: int, *, same_letters: bool = True) -> str:
    """Fold all words in one call; word by word only if that changed where words split.
    `same_letters=False`: the text has none of `_SAME_LETTERS` (skips a scan)."""
    if count == 0:
        return ""
    folded = unicodedata.normalize("NFKC", joined).casefold()
    if same_letters:
        folded = folded.translate(_SAME_LETTERS)
    folded = " ".join(folded.split(" "))
    if folded.count(" ") == count - 1 and "  " not in folded:
        return folded
    return " ".join(fold(w) or "_" for w in joined.split(" "))  # never empty: word i after space i


@lru_cache(maxsize=65_536)
def _is_word_char(code: int) -> bool:
    return _WORD_CHAR.fullmatch(chr(code)) is not None


def _high_chars(text: str) -> list[int]:
    """The distinct characters of the text from U+0300 up (combining marks, Cyrillic, Arabic,
    CJK, and the quotes and dashes of English text), found with numpy: 20x faster than a
    regex scan for the few that decide how the text is cut and folded."""
    if text.isascii():
        return []
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    found: list[int] = np.unique(codes[codes >= 0x300]).tolist()
    return found


@lru_cache(maxsize=65_536)
def _is_special(code: int) -> bool:
    return _SPECIAL.match(chr(code)) is not None


@lru_cache(maxsize=65_536)
def _is_plain_word_char(code: int) -> bool:
    return _PLAIN_WORD.fullmatch(chr(code)) is not None


@lru_cache(maxsize=65_536)
def _is_cjk_char(code: int) -> bool:
    return _CJK_CHAR.match(chr(code)) is not None


def _edges(text: str, *, special: bool = True, ascii_words: bool = False) -> WordEdges:
    """Word edges found with numpy, ~9x faster than walking `finditer` in Python; the same
    words as `WORD` (a CJK character is a word of its own), or as `\\w+` when the text
    has neither CJK nor combining marks (`special=False`, how `FieldWords` cut it).
    Placing a rule's hits needs them once per field with a hit, so a large watch list,
    whose rules fire on most stories, pays this on most fields: ASCII text is read as
    bytes, and so is text whose words are all ASCII (`ascii_words`: English with
    typographic quotes and dashes, where every other character is a non-word one and
    reads as the "?" it encodes to); otherwise the few distinct other characters are
    classed once each."""
    if text.isascii() or (ascii_words and not special):
        is_word = np.zeros(len(text) + 2, dtype=bool)
        as_bytes = text.encode("ascii", "replace")  # one byte a character, "?" for the others
        is_word[1:-1] = _ASCII_WORD_CHARS[np.frombuffer(as_bytes, dtype=np.uint8)]
        return _starts_ends(is_word)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    is_word = np.zeros(len(codes) + 2, dtype=bool)
    low = codes < 128
    is_word[1:-1][low] = _ASCII_WORD_CHARS[codes[low]]
    high = ~low
    distinct, inverse = np.unique(codes[high], return_inverse=True)
    classes = distinct.tolist()
    word_char = _is_word_char if special else _is_plain_word_char
    letters = np.array([word_char(c) for c in classes], dtype=bool)
    is_word[1:-1][high] = letters[inverse]
    cjk = np.array([word_char(c) and _is_cjk_char(c) for c in classes], dtype=bool)
    if not cjk.any():
        return _starts_ends(is_word)
    is_cjk = np.zeros(len(codes) + 2, dtype=bool)
    is_cjk[1:-1][high] = cjk[inverse]
    word, before, after = is_word[1:-1], is_word[:-2], is_word[2:]
    own, cjk_before, cjk_after = is_cjk[1:-1], is_cjk[:-2], is_cjk[2:]
    starts = np.flatnonzero(word & (~before | own | cjk_before))
    ends = np.flatnonzero(word & (~after | own | cjk_after)) + 1
    return starts, ends


def _starts_ends(is_word: npt.NDArray[np.bool_]) -> WordEdges:
    """Where runs of word characters start and end, from a mask framed by one non-word
    position on each side (so offsets come out as offsets into the text)."""
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    return edges[0::2], edges[1::2]


def _is_katakana(char: str) -> bool:
    return "\u30a0" <= char <= "\u30ff" or "\uff66" <= char <= "\uff9f" or char == "\u31f0"


def _is_hangul(char: str) -> bool:
    return (
        "\uac00" <= char <= "\ud7af"
        or "\u1100" <= char <= "\u11ff"
        or ("\u3130" <= char <= "\u318f")
    )


def script_bounded(text: str, start: int, end: int) -> bool:
    """Does a hit at text[start:end] respect the word edges its script shows? Han has none
    (any character sequence may be a word); a katakana term must not run on into more
    katakana ("テスラ" is not in "プロテスラー"); a Hangul term must start a Korean word,
    which particles may follow ("삼성" in "삼성은", not in "한삼성")."""
    first, last = text[start], text[end - 1]
    if first < "\u1100" and last < "\u1100":
        return True
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if _is_katakana(first) and _is_katakana(before):
        return False
    if _is_katakana(last) and _is_katakana(after):
        return False
    return not (_is_hangul(first) and _is_hangul(before))


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
# In CJK, Arabic and Indic text a sentence ends at its own full stops, with or without space.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?])[\"'\u201d\u2019)\]]*\s+"
    r"(?=[\"'\u201c\u2018\u00ab(\[]?[A-Z0-9\u00c0-\u024f\u0391-\u03a9\u0400-\u042f\u0600-\u06ff]))"
    r"|(?<=[\u3002\uff01\uff1f\u061f\u0964])[\u300d\u300f\uff09\u201d]*\s*"
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
