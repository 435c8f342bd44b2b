"""Cut page furniture out of the DOM before the main-text extractor sees it.

trafilatura already drops much boilerplate, but whatever it keeps lands in the
story text, and a name in a sidebar must not raise an alert. So containers that
say what they are (semantic tags, ARIA roles, class/id words such as "related"
or "newsletter", lists of links, headlines linking to other stories, headings
such as "You may also like") are removed first. Every rule is generic: nothing
here knows a site. One guard keeps this safe on odd markup: a container holding
a large share of the page's paragraph text is the story, whatever it is called.

Candidates are selected with XPath (evaluated in C) and only then checked in
Python, so the pass costs a few milliseconds even on large pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from lxml.etree import XPath  # type: ignore[import-untyped]
from lxml.html import HtmlElement  # type: ignore[import-untyped]

from pipeline.extractor.furniture_phrases import SECTION_LABELS

Rule = Callable[[HtmlElement], Iterable[HtmlElement]]

_KEEP_SHARE = 0.3
# Below this much <p> text the page keeps its words elsewhere (<div>s, <br>s) and
# the guard measures all text outside links instead.
_MIN_PROSE = 500
_CARD_PROSE = 400
_LINK_SHARE = 0.9
_CARD_DEPTH = 3
_LABEL_CHARS = 60

_FURNITURE_ROLES = frozenset(
    {
        "navigation",
        "complementary",
        "contentinfo",
        "banner",
        "search",
        "dialog",
        "alertdialog",
        "menu",
        "menubar",
        "toolbar",
        "tooltip",
    }
)
# Class/id words of furniture, matched as whole words of the name ("share-bar",
# "most-read").
_FURNITURE_WORDS = re.compile(
    r"(?:^|[^a-z0-9])(?:"
    r"related|trending|popular|most-(?:read|viewed|popular|shared)|recommend(?:ed|ations?)?"
    r"|read-?more|more-stories|also-read|see-also|you-may-like|newsletters?|subscribe|signup"
    r"|share|sharing|social|comments?|disqus|respond|reply"
    r"|sidebar|breadcrumbs?|promo|sponsored|advert\w*|ads?|outbrain|taboola"
    r"|tooltip|popover|popup|rollover|hovercard|modal|cookie|consent"
    r")(?:$|[^a-z0-9])"
)
# As in Readability: a name that also says "content" or "article" is a layout
# wrapper ("content-with-sidebar", "article modal-enabled"), not the furniture.
_CONTENT_WORDS = re.compile(r"article|body|content|main|story|entry|post|text|column")
_SECTION_LABEL = re.compile(
    r"^\W*(?:you (?:may|might) (?:also )?(?:like|enjoy|be interested in)"
    r"|related(?: \w+)?|more (?:stories|news|articles|videos|to explore|like this)"
    r"|more from \w+(?: \w+)?"
    r"|(?:our |the )?latest (?:stories|news|headlines|articles|posts|videos)"
    r"|recommended(?: for you| stories| reading| articles)?|trending(?: now| stories| news)?"
    r"|(?:most )?(?:popular|read|viewed|shared)(?: now| stories| articles| news)?"
    r"|don'?t miss|sponsored(?: links| content| stories)?|promoted(?: stories| content)?"
    r"|around the web|further reading|what to read next|read (?:more|next)|also read"
    r"|top stories|editor'?s picks|from (?:our|the) (?:partners|web)"
    rf"|{SECTION_LABELS})\W*$",
    re.IGNORECASE,
)

_SEMANTIC = XPath(
    "//nav|//aside|//footer|//form|//dialog|//menu|//template"
    "|//*[@hidden or @aria-hidden='true' or @role]"
)
_NAMED = XPath("//body//*[@class or @id]")
_LISTS = XPath("//ul[li]|//ol[li]")
_HEADINGS = XPath("//h1|//h2|//h3|//h4|//h5|//h6")
_LABELS = XPath(
    "//h1|//h2|//h3|//h4|//h5|//h6"
    "|//body//*[count(*) < 3 and (contains(@class, 'title') or contains(@class, 'heading'))]"
)
# An embedded post (a tweet in <blockquote class="twitter-tweet">) quotes someone in the
# story, even when its wrapper is called "social-embed".
_QUOTED_PROSE = XPath(".//blockquote[string-length(normalize-space()) > 80]")
_SCRIPTS = XPath("//script|//style|//noscript")


def prune_furniture(root: HtmlElement) -> None:
    """Remove furniture containers in place, never one that holds much of the story."""
    for script in _SCRIPTS(root):
        _drop(script)
    measure = _prose_length if _prose_length(root) >= _MIN_PROSE else _unlinked_length
    limit = _KEEP_SHARE * max(1, measure(root))
    doomed = {id(el): el for rule in RULES for el in rule(root)}
    for element in doomed.values():
        if element.tag not in ("html", "body") and measure(element) < limit:
            _drop(element)


def semantic_furniture(root: HtmlElement) -> Iterator[HtmlElement]:
    """<nav>, <aside>, <footer>, forms, hidden elements, ARIA landmark roles of furniture."""
    for element in _SEMANTIC(root):
        role = element.get("role")
        if role is None or role.strip().lower() in _FURNITURE_ROLES:
            yield element


def named_furniture(root: HtmlElement) -> Iterator[HtmlElement]:
    """Containers whose class or id says "related", "share", "newsletter", "comments"...

    Inside a paragraph, a hover card wraps both the linked name the sentence needs
    ("threatened to kill Rep. <span class=rollover><a>Ilhan Omar</a><span
    class=rollover-block>...</span></span>") and the popup: then only the innermost
    furniture goes, and the name stays in the sentence; a link in a sentence is
    sentence text whatever its class says.
    """
    named = [el for el in _NAMED(root) if _is_named_furniture(el) and not _QUOTED_PROSE(el)]
    doomed = {id(el) for el in named}
    for element in named:
        if _in_paragraph(element) and (
            element.tag == "a" or any(id(d) in doomed for d in element.iterdescendants())
        ):
            continue
        yield element


def _is_named_furniture(element: HtmlElement) -> bool:
    names = _names(element)
    return bool(_FURNITURE_WORDS.search(names)) and not _CONTENT_WORDS.search(names)


def _in_paragraph(element: HtmlElement) -> bool:
    return any(a.tag == "p" for a in element.iterancestors())


def link_lists(root: HtmlElement) -> Iterator[HtmlElement]:
    """A list whose every item is a link is a "read more" block, not prose."""
    for element in _LISTS(root):
        items = [li for li in element if li.tag == "li"]
        if len(items) >= 2 and all(_link_share(li) >= _LINK_SHARE for li in items):
            yield element


def teaser_cards(root: HtmlElement) -> Iterator[HtmlElement]:
    """A headline that links to another page is a card for another story."""
    for heading in _HEADINGS(root):
        if _links_elsewhere(heading):
            yield _card_of(heading)


def section_labels(root: HtmlElement) -> Iterator[HtmlElement]:
    """A heading such as "You may also like" announces the block it sits in."""
    for label in _LABELS(root):
        text = " ".join("".join(label.itertext()).split())
        if len(text) <= _LABEL_CHARS and _SECTION_LABEL.match(text):
            parent = label.getparent()
            yield label if parent is None else parent


RULES: tuple[Rule, ...] = (
    semantic_furniture,
    named_furniture,
    link_lists,
    teaser_cards,
    section_labels,
)


def _names(element: HtmlElement) -> str:
    return f"{element.get('class', '')} {element.get('id', '')}".lower()


def _links_elsewhere(heading: HtmlElement) -> bool:
    if any(_goes_elsewhere(a) for a in heading.iterancestors("a")):
        return True
    return _has_outbound_link(heading) and _link_share(heading) >= _LINK_SHARE


def _has_outbound_link(element: HtmlElement) -> bool:
    return any(_goes_elsewhere(a) for a in element.iter("a"))


def _card_of(heading: HtmlElement) -> HtmlElement:
    """The list item or <article> a teaser headline sits in, or the headline alone.

    A "card" with much prose is the story itself (a blog post whose title links
    to its own permalink), so then only the headline goes.
    """
    for depth, ancestor in enumerate(heading.iterancestors()):
        if ancestor.tag in ("li", "article"):
            return ancestor if _prose_length(ancestor) < _CARD_PROSE else heading
        if depth >= _CARD_DEPTH:
            break
    return heading


def _goes_elsewhere(anchor: HtmlElement) -> bool:
    href = anchor.get("href", "").strip()
    return bool(href) and not href.startswith(("#", "javascript:"))


def _link_share(element: HtmlElement) -> float:
    text = _text_length(element)
    linked = sum(_text_length(a) for a in element.iter("a"))
    return linked / text if text else 1.0


def _prose_length(element: HtmlElement) -> int:
    """Characters of paragraph text outside links: where a story's words live."""
    paragraphs = [element] if element.tag == "p" else element.iter("p")
    return sum(_unlinked_length(p) for p in paragraphs)


def _unlinked_length(element: HtmlElement) -> int:
    return _text_length(element) - sum(_text_length(a) for a in element.iter("a"))


def _text_length(element: HtmlElement) -> int:
    return len("".join(element.itertext()).strip())


def _drop(element: HtmlElement) -> None:
    """Remove an element but keep its tail, the text that follows it in the parent."""
    if element.getparent() is not None:
        element.drop_tree()
