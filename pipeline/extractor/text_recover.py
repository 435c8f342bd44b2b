"""Put back the story text that the precision pass dropped.

trafilatura set for precision keeps the densest run of paragraphs and cuts what
it doubts. Three kinds of page lose story text, and watched names, that way:

- a body split across sibling containers of the same kind (`<div class="body">`
  twice or more, with an ad, a pull quote or a related-links block between):
  only the first run is kept, and every name in the second half is lost;
- a short market story of quotes and bracketed figures whose company names and
  tickers are inline links (`<span class="link"><a>Glencore</a></span>`): the
  precision pass cuts the linked words out of each paragraph ("fell 3.1%, 2.8%");
- paragraphs it drops one by one between kept ones (short ones with links,
  headings, quoted posts).

All are repaired from the pruned DOM, after extraction, at the cost of a few
XPath passes: the paragraphs whose words are in the extracted text show where
the story lives (its containers); paragraphs of those containers (a blockquote
also one level down), and of their twins (siblings with the same tag and class),
that the text lacks are candidates. A kept line that is a cut copy of such a
paragraph is replaced by the whole paragraph; another candidate comes back when
it reads as prose rather than links (`Tuning`), in page order after the kept
paragraph it follows. Nothing here knows a site or a language: structure, link
share and length decide, and the furniture pruned before extraction is already
gone from the tree.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lxml.etree import XPath, iterwalk  # type: ignore[import-untyped]
from lxml.html import HtmlElement  # type: ignore[import-untyped]

_TOKEN = re.compile(r"\w+")
_DIGITS = re.compile(r"\d+")
_BLOCKS = XPath(
    ".//*[self::p or self::h2 or self::h3 or self::h4 or self::h5 or self::h6"
    " or self::blockquote or self::li or self::pre]"
)
_BLOCK_TAGS = frozenset({"p", "h2", "h3", "h4", "h5", "h6", "blockquote", "li", "pre"})
_BREAKS = frozenset({"br", "hr", "li", "p", "div", "td", "tr"})
_HEADLINES = XPath(".//h1|.//h2")
# A container holding at least this share of the kept paragraphs' text is where the story lives.
_HOME_SHARE = 0.2
# A kept line is a cut copy of a paragraph when this share of its words (at least this
# many) are the paragraph's: the precision pass removes linked words from inside a paragraph.
_CUT_SHARE = 0.95
_MIN_CUT_WORDS = 4  # a shorter line must consist only of the paragraph's words
_CUT_WINDOW = 3  # lines after the last kept paragraph where its cut copy may be
# A page with more paragraphs than this is no article (the heaviest scored page has a few
# hundred); the search for dropped ones grows with paragraphs times text, so it is skipped.
MAX_BLOCKS = 3000
# How far up from a story container a twin may be found (1: siblings of the container itself).
_TWIN_LEVELS = 2


@dataclass(frozen=True)
class Tuning:
    """What a dropped paragraph must look like to come back; chosen by cross-validation."""

    max_link_share: float  # share of its characters inside links
    min_chars: int  # characters of text outside links
    min_lead_chars: int  # a paragraph before the first kept one: longer than bylines, captions
    tail: bool  # paragraphs after the last kept one, in the same container
    min_twin_chars: int  # prose a twin container must hold for its paragraphs to come back
    repair: bool  # restore a kept paragraph whose linked words the precision pass cut out


# Chosen by bench/extraction_quality.py on the whole corpus (its cross-validated figure
# tunes on k-1 folds and scores the held-out one).
TUNING = Tuning(
    max_link_share=0.6,
    min_chars=1,
    min_lead_chars=10**9,
    tail=False,
    min_twin_chars=200,
    repair=True,
)

Place = Literal["lead", "inside", "tail", "twin"]


@dataclass(frozen=True)
class Dropped:
    """A paragraph of the story's containers (or their twins) that the extracted text lacks."""

    text: str
    anchor: int  # index of the extracted line it follows (-1: before the first)
    place: Place
    link_share: float
    unlinked_chars: int
    twin_chars: int  # for a twin's paragraph, the unlinked text of all the twin's paragraphs
    repairs: bool  # the line after the anchor is this paragraph with words cut out of it


@dataclass(frozen=True)
class Recovery:
    """The extracted lines and what could be put back among them."""

    lines: tuple[str, ...]
    dropped: tuple[Dropped, ...]

    def restore(self, tuning: Tuning = TUNING) -> str:
        """The lines with every dropped paragraph that `tuning` accepts, in page order."""
        after: dict[int, list[str]] = {}
        lines = list(self.lines)
        for block in self.dropped:
            if block.repairs and tuning.repair:
                lines[block.anchor + 1] = block.text
            elif not block.repairs and _accepted(block, tuning):
                after.setdefault(block.anchor, []).append(block.text)
        out = list(after.get(-1, ()))
        for index, line in enumerate(lines):
            out.append(line)
            out.extend(after.get(index, ()))
        return "\n".join(out)


def find_dropped(root: HtmlElement, text: str) -> Recovery:
    """The paragraphs of the story's containers (and their twins) missing from `text`."""
    lines = tuple(text.split("\n"))
    kept = _KeptText(lines)
    blocks = [b for b in _BLOCKS(root) if not _inside_block(b)]
    if len(blocks) > MAX_BLOCKS:
        return Recovery(lines, ())
    keys = {id(b): _key(b) for b in blocks}
    homes = _homes([b for b in blocks if keys[id(b)] and kept.has(keys[id(b)])], keys)
    if not homes:
        return Recovery(lines, ())
    return Recovery(lines, tuple(_dropped_in(blocks, homes, keys, kept)))


def _accepted(block: Dropped, tuning: Tuning) -> bool:
    if block.link_share > tuning.max_link_share or block.unlinked_chars < tuning.min_chars:
        return False
    if block.place == "twin":
        return block.twin_chars >= tuning.min_twin_chars
    if block.place == "lead":
        return block.unlinked_chars >= tuning.min_lead_chars
    return block.place == "inside" or tuning.tail


class _KeptText:
    """The extracted text as one token string, to ask whether a paragraph is in it."""

    def __init__(self, lines: Sequence[str]) -> None:
        starts, parts, offset = [], [], 1
        for line in lines:
            starts.append(offset)
            part = " ".join(_tokens(line))
            parts.append(part)
            offset += len(part) + 1
        self.joined = " " + " ".join(parts) + " "
        self.starts = starts
        self.parts = parts
        self.last_line = len(lines) - 1
        # most paragraphs are one line each: look those up, search the text for the rest
        self.whole_lines: dict[str, int] = {}
        for index, part in enumerate(parts):
            self.whole_lines.setdefault(part, index)

    def has(self, key: str) -> bool:
        return key in self.whole_lines or f" {key} " in self.joined

    def line_of(self, key: str) -> int:
        """The line where `key` ends (the last line when it spans several)."""
        if key in self.whole_lines:
            return self.whole_lines[key]
        position = self.joined.find(f" {key} ")
        return bisect.bisect_right(self.starts, position + len(key)) - 1

    def cut_copy(self, start: int, key: str) -> int | None:
        """The line, among the few after `start`, that is paragraph `key` with words cut out."""
        words = Counter(key.split())
        for index in range(max(0, start), min(start + _CUT_WINDOW, self.last_line + 1)):
            line = self.parts[index].split()
            if not line or len(line) >= sum(words.values()):
                continue
            share = _CUT_SHARE if len(line) >= _MIN_CUT_WORDS else 1.0
            if sum((Counter(line) & words).values()) >= share * len(line):
                return index
        return None


def _homes(kept: Sequence[HtmlElement], keys: dict[int, str]) -> list[HtmlElement]:
    """The containers holding a good share of the kept paragraphs: the story's home."""
    weight: Counter[HtmlElement] = Counter()
    for block in kept:
        parent = block.getparent()
        if parent is not None:
            weight[parent] += len(keys[id(block)])
    total = sum(weight.values())
    return [home for home, chars in weight.items() if chars >= _HOME_SHARE * total]


def _dropped_in(
    blocks: Sequence[HtmlElement],
    homes: Sequence[HtmlElement],
    keys: dict[int, str],
    kept: _KeptText,
) -> list[Dropped]:
    """Walk the blocks in page order, remembering the last kept one as the anchor."""
    home_ids = {id(h) for h in homes}
    twins = {id(t): t for t in _twins(homes)}
    found: list[tuple[Dropped, int | None]] = []
    anchor = -1
    for block in blocks:
        key = keys[id(block)]
        if not key:
            continue
        if kept.has(key):
            anchor = max(anchor, kept.line_of(key))
            continue
        parent = block.getparent()
        if block.tag == "blockquote" and parent is not None and id(parent) not in home_ids:
            parent = parent.getparent()
        twin = next((id(a) for a in block.iterancestors() if id(a) in twins), None)
        if parent is not None and id(parent) in home_ids:
            cut = kept.cut_copy(anchor + 1, key)
            if cut is None:
                found.append((_describe(block, anchor, _home_place(anchor, kept)), None))
            else:
                found.append((replace(_describe(block, cut - 1, "inside"), repairs=True), None))
                anchor = cut
        elif twin is not None:
            found.append((_describe(block, anchor, "twin"), twin))
    prose: Counter[int] = Counter()
    for block, twin in found:
        if twin is not None:
            prose[twin] += block.unlinked_chars
    return [b if t is None else replace(b, twin_chars=prose[t]) for b, t in found]


def _home_place(anchor: int, kept: _KeptText) -> Place:
    if anchor < 0:
        return "lead"
    return "tail" if anchor >= kept.last_line else "inside"


def _twins(homes: Sequence[HtmlElement]) -> Iterator[HtmlElement]:
    """Siblings of a story container (or of its parent) with the same tag and class."""
    for home in homes:
        level = home
        for _ in range(_TWIN_LEVELS):
            signature = _signature(level)
            parent = level.getparent()
            if signature is None or parent is None:
                break
            for sibling in parent:
                if (
                    sibling is not level
                    and _signature(sibling) == signature
                    and _may_be_twin(sibling)
                ):
                    yield sibling
            level = parent


def _signature(element: HtmlElement) -> tuple[str, str] | None:
    """Tag and class words without numbers ("body-part-2" is a twin of "body-part-1")."""
    classes = element.get("class", "").split()
    if not isinstance(element.tag, str) or not classes:
        return None
    return element.tag, " ".join(sorted(_DIGITS.sub("", c) for c in classes))


def _may_be_twin(element: HtmlElement) -> bool:
    """An <article> or a block with its own headline is another story, not more of this one."""
    return element.tag != "article" and not _HEADLINES(element)


def _describe(block: HtmlElement, anchor: int, place: Place) -> Dropped:
    text = _block_text(block)
    linked = sum(len(" ".join("".join(a.itertext()).split())) for a in block.iter("a"))
    return Dropped(
        text=text,
        anchor=anchor,
        place=place,
        link_share=linked / len(text) if text else 1.0,
        unlinked_chars=max(0, len(text) - linked),
        twin_chars=0,
        repairs=False,
    )


def _inside_block(element: HtmlElement) -> bool:
    return any(a.tag in _BLOCK_TAGS for a in element.iterancestors())


def _key(block: HtmlElement) -> str:
    return " ".join(_tokens(_block_text(block)))


def _block_text(block: HtmlElement) -> str:
    """The block's text with a space at each <br> and block edge (itertext glues "FL<br>June")."""
    parts: list[str] = []
    for event, node in iterwalk(block, events=("start", "end")):
        if event == "start":
            parts.append(" " if node.tag in _BREAKS else "")
            parts.append(node.text or "" if isinstance(node.tag, str) else "")
        elif node is not block:
            parts.append(" " if node.tag in _BREAKS else "")
            parts.append(node.tail or "")
    return " ".join("".join(parts).split())


def _tokens(text: str) -> list[str]:
    """Words as the scorer sees them; soft hyphens go, as trafilatura drops them too."""
    return _TOKEN.findall(text.replace("\xad", ""))
