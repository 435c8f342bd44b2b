"""Word streams and offsets: the same words, at the same places, whatever the script."""

from __future__ import annotations

import pytest

from pipeline.rules.tokens import (
    _PLAIN_WORD,
    WORD,
    FieldWords,
    _edges,
    gap_kind,
    stem_stream,
    words,
)

TEXTS = [
    "",
    "   ",
    "Tesla",
    "“Tesla\u2019s” factory, 2019.",
    "Qin Gang told Musk: \u2018avoid dangerous driving\u2019",
    "Zürich, Straße and naïve café — São Paulo",
    "the ﬁnance ministry (½ of it) said ① thing",
    "Ελλάδα και Κίνα: 中国外交部 said on Monday",
    "under_score snake_case and x2 \u00d73",
]


@pytest.mark.parametrize("text", TEXTS)
def test_spans_are_the_regex_words(text: str) -> None:
    starts, ends = FieldWords(text).spans()
    assert list(zip(starts, ends, strict=True)) == [m.span() for m in WORD.finditer(text)]


# English as feeds write it: ASCII words between typographic quotes, dashes, no-break
# spaces, ellipses and emoji (one outside the BMP), which the word edges read as bytes.
ASCII_WORDS = [
    "\u201cTesla\u2019s\u201d factory \u2014 2019\u2026",
    "Model\u00a0Y recalled \U0001f697 again \u2013 \u2018quietly\u2019; \u00abno\u00bb comment",
    "\u2022 one\u2003two\u2009three \u20ac5 \u2122",
]


@pytest.mark.parametrize("text", ASCII_WORDS)
def test_ascii_words_read_as_bytes_sit_where_the_regex_puts_them(text: str) -> None:
    field = FieldWords(text)
    assert field.ascii_words and not field.special and not text.isascii()
    expected = [m.span() for m in _PLAIN_WORD.finditer(text)]
    starts, ends = _edges(text, special=False, ascii_words=True)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == expected
    general = _edges(text, special=False)  # the path for text with non-ASCII letters
    assert [a.tolist() for a in general] == [starts.tolist(), ends.tolist()]
    assert list(zip(*field.spans(), strict=True)) == expected


@pytest.mark.parametrize("text", TEXTS)
def test_one_folded_form_per_word(text: str) -> None:
    field = FieldWords(text)
    assert len(field.surface.split()) == len(WORD.findall(text))
    assert field.surface == field.surface.casefold()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tesla\u2019s TESLA", ["tesla", "s", "tesla"]),
        ("ﬁnance Straße", ["finance", "strasse"]),
        ("Zürich", ["zürich"]),
    ],
)
def test_words_are_folded(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_inflections_share_a_stem() -> None:
    assert stem_stream("unbundling unbundle unbundled unbundles") == " ".join(["unbundl"] * 4)


@pytest.mark.parametrize(
    ("gap", "kind"),
    [(" ", ""), ("\n", ""), (" - ", ""), ("\u2013", ""), (". ", "."), ("\n\n", "¶"), ("&", "&")],
)
def test_gap_kinds(gap: str, kind: str) -> None:
    assert gap_kind(gap) == kind
