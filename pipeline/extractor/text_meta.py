"""Title, author, date and language of a page, read cheaply from its markup.

trafilatura's full `extract_metadata` also derives categories, tags, licence
and site name and, when a page has no author meta tag, searches the whole DOM
for a byline: about a third of the cost of an extraction, for fields the
pipeline does not use. So only the cheap sources are read here: <meta> tags and
JSON-LD (through trafilatura's own readers), the <title>, rel/itemprop author
markup, htmldate for the date and the `lang` attribute for the language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from htmldate import find_date
from lxml.etree import XPath  # type: ignore[import-untyped]
from lxml.html import HtmlElement  # type: ignore[import-untyped]
from trafilatura.metadata import examine_meta, extract_meta_json, extract_title

_AUTHOR_MARKUP = XPath(
    "(//*[@itemprop='author']//*[@itemprop='name'] | //a[@rel='author']"
    " | //*[@itemprop='author'] | //*[@rel='author'])"
)
_LANGUAGE_MARKUP = XPath(
    "/html/@lang | /html/@xml:lang | //meta[@http-equiv='content-language']/@content"
    " | //meta[@property='og:locale']/@content"
)
_LANGUAGE = re.compile(r"^\s*([a-zA-Z]{2})(?:$|[-_\s,;])")
_MAX_AUTHOR_CHARS = 80


@dataclass(frozen=True)
class PageMeta:
    title: str | None
    author: str | None
    date: str | None
    language: str | None


def read_meta(tree: HtmlElement, url: str | None) -> PageMeta:
    """Never raises for odd markup: a field that cannot be read is None."""
    document = extract_meta_json(tree, examine_meta(tree))
    return PageMeta(
        title=document.title or extract_title(tree) or None,
        author=document.author or _author_from_markup(tree),
        date=_date(tree, url),
        language=_language(tree),
    )


def _author_from_markup(tree: HtmlElement) -> str | None:
    for element in _AUTHOR_MARKUP(tree):
        name = " ".join("".join(element.itertext()).split())
        if 0 < len(name) <= _MAX_AUTHOR_CHARS:
            return name
    return None


def _date(tree: HtmlElement, url: str | None) -> str | None:
    """The publication date as YYYY-MM-DD; htmldate rejects dates after today."""
    found = find_date(
        tree, url=url, original_date=True, extensive_search=False, max_date=date.today().isoformat()
    )
    return found or None


def _language(tree: HtmlElement) -> str | None:
    """ISO 639-1 code from the markup ("en-US" gives "en"); pages rarely lie about this."""
    for value in _LANGUAGE_MARKUP(tree):
        match = _LANGUAGE.match(str(value))
        if match:
            return match.group(1).lower()
    return None
