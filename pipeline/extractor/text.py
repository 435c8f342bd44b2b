"""Main text of a news page, with the page furniture kept out.

The extractor stage runs this on every story, and the rules stage raises alerts
on the words it returns, so precision matters more than the last sentence of
recall: a watched name in a "Trending" sidebar, a related-stories block or a
comment form must never read as story text. The text is made in three passes:

1. `text_prune` removes furniture containers from the DOM by generic signals;
2. trafilatura, set for precision and without comments, extracts the body;
3. `text_recover` puts back the story text the precision pass dropped (a body
   split across sibling containers, linked names cut out of a market story's
   paragraphs), judged by structure and link share in the pruned tree;
4. `text_lines` drops the boilerplate lines left inside the body (the repeated
   headline, "Related: ..." links, newsletter pitches).

A page that yields no usable text raises `ExtractionRejected` with a fixed
reason token, never returns None: the caller falls back to the feed summary
and records why.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from lxml.etree import LxmlError  # type: ignore[import-untyped]
from lxml.html import HtmlElement  # type: ignore[import-untyped]
from trafilatura import bare_extraction, load_html

from pipeline.errors import ExtractionRejected
from pipeline.extractor.text_decode import check_markup, decode_html
from pipeline.extractor.text_lines import drop_boilerplate_lines
from pipeline.extractor.text_meta import PageMeta, read_meta
from pipeline.extractor.text_prune import prune_furniture
from pipeline.extractor.text_recover import TUNING, Recovery, Tuning, find_dropped

log = logging.getLogger(__name__)

# Pages this large are not articles, and extraction time grows faster than
# their size: beyond these the worker would spend seconds on a single page.
# The element count of the heaviest page in the scored corpus is about 1,600.
MAX_HTML_CHARS = 10_000_000
MAX_ELEMENTS = 20_000
# What lxml, trafilatura and htmldate raise on input they cannot cope with. Any of
# these becomes a rejection, so a hostile page costs a story its text, not the worker.
_LIBRARY_ERRORS = (
    LxmlError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    RecursionError,
)


@dataclass(frozen=True)
class Article:
    text: str  # main text, paragraphs separated by "\n"
    title: str | None
    author: str | None
    date: str | None  # ISO date (YYYY-MM-DD) if found
    language: str | None  # ISO 639-1 from the page markup, if declared


@dataclass(frozen=True)
class Draft:
    """A page read and extracted, before the tunable recovery step decides the final text.

    The quality bench drafts each page once and finishes it under many `Tuning`s.
    """

    recovery: Recovery
    meta: PageMeta

    def finish(self, tuning: Tuning = TUNING, *, min_chars: int = 200) -> Article:
        text = drop_boilerplate_lines(self.recovery.restore(tuning), self.meta.title)
        if text_length(text) < min_chars:
            raise ExtractionRejected(
                f"{text_length(text)} chars of text, need {min_chars}", reason="too_short"
            )
        meta = self.meta
        return Article(text, meta.title, meta.author, meta.date, meta.language)


_DENSE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
DENSE_WEIGHT = 3


def text_length(text: str) -> int:
    """How much text a page holds, in Latin characters: a Chinese, Japanese or Korean
    character says about what three Latin ones do (a word and its space), so a 150-character
    Chinese brief is a story, not a scrap below `min_text_chars`."""
    if text.isascii():
        return len(text)
    return len(text) + (DENSE_WEIGHT - 1) * len(_DENSE.findall(text))


def extract_article(html: str | bytes, url: str | None = None, *, min_chars: int = 200) -> Article:
    """The story in `html`, or `ExtractionRejected` saying why there is none.

    Reasons: "empty", "too_large", "not_html", "unparsable", "too_short", and
    "extraction_error" when a parsing library fails on input it should have handled.
    """
    return draft_article(html, url).finish(min_chars=min_chars)


def draft_article(html: str | bytes, url: str | None = None) -> Draft:
    """Parse, prune, extract and find the dropped paragraphs: everything but the choice."""
    tree = _parse(_as_text(html))
    meta = _read_meta(tree, url)
    try:
        prune_furniture(tree)
        recovery = find_dropped(tree, _main_text(tree, url))
    except _LIBRARY_ERRORS as exc:
        raise ExtractionRejected(f"extraction failed: {exc!r}", reason="extraction_error") from exc
    return Draft(recovery, meta)


def _as_text(html: str | bytes) -> str:
    if not html or html.isspace():
        raise ExtractionRejected("no content", reason="empty")
    if len(html) > MAX_HTML_CHARS:
        raise ExtractionRejected(f"{len(html)} chars of HTML", reason="too_large")
    text = decode_html(html) if isinstance(html, bytes) else html
    check_markup(text)
    return text


def _parse(text: str) -> HtmlElement:
    try:
        tree = load_html(text)
    except _LIBRARY_ERRORS as exc:
        raise ExtractionRejected(
            f"lxml could not parse the page: {exc!r}", reason="unparsable"
        ) from exc
    if tree is None:
        raise ExtractionRejected("lxml could not parse the page", reason="unparsable")
    elements = int(tree.xpath("count(//*)"))
    if elements > MAX_ELEMENTS:
        raise ExtractionRejected(f"{elements} HTML elements", reason="too_large")
    return tree


def _read_meta(tree: HtmlElement, url: str | None) -> PageMeta:
    """Metadata is a bonus: odd markup there must not cost the story its text."""
    try:
        return read_meta(tree, url)
    except _LIBRARY_ERRORS:
        log.warning("metadata unreadable, url=%s", url, exc_info=True)
        return PageMeta(None, None, None, None)


def _main_text(tree: HtmlElement, url: str | None) -> str:
    document = bare_extraction(
        tree, url=url, favor_precision=True, include_comments=False, with_metadata=False
    )
    return getattr(document, "text", None) or ""
