"""Word streams and offsets: the same words, at the same places, whatever the script."""

from __future__ import annotations

import pytest

from pipeline.rules.tokens import WORD, FieldWords, gap_kind, stem_stream, words

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
