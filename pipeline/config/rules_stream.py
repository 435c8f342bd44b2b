"""Reading rules.yaml a few thousand rules at a time, never the whole list at once.

A watch list of 100,000 rules parsed whole is 100,000 dicts with their strings (about
110 MB) before the first rule is validated; freed afterwards, most of that memory stays
with the process, interleaved with the rules built meanwhile. So a rules file of the
plain shape, a top-level `rules:` key holding a block sequence and nothing else, is cut
at the lines that start its items, and each piece of `CHUNK` items is parsed (the same
YAML 1.2 parser) and validated before the next is read.

Cutting there cannot change what the file means: a line indented as the sequence's
items and starting with `- ` ends whatever scalar or mapping the item before it was
writing (YAML requires their continuation lines to be indented further), and each item
is a node of its own. What does not fit that reading is never guessed at: a file of
another shape, or a piece that is not valid YAML alone (an alias to an anchor of an
earlier piece, a quoted string or flow list left open) or holds another number of
items than it has item lines, is parsed whole as before, so its errors (and their line
numbers) are the parser's on the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml_rs

# What may stand before the sequence: a document start, blank and comment lines, `rules:`.
_HEAD = re.compile(
    r"(?:---[ \t]*(?:#[^\n]*)?\n)?(?:[ \t]*(?:#[^\n]*)?\r?\n)*rules:[ \t]*(?:#[^\n]*)?\r?\n"
)
# The first line with content after it: an item of the sequence, at its indentation.
_FIRST_ITEM = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\r?\n)*( *)-(?:[ \t]|\r?$)", re.M)
_ITEM = re.compile(r"-(?:[ \t]|\r?$)")


class NotPlain(Exception):
    """The rules file is not of the plain shape, or a piece of it is not YAML alone."""


def item_starts(text: str) -> list[int] | None:
    """The offset of each item's first line; None if the text is not a `rules:` key over a
    block sequence, with nothing but comments and blank lines beside them."""
    head = _HEAD.match(text)
    first = _FIRST_ITEM.match(text, head.end()) if head else None
    if head is None or first is None:
        return None
    indent = len(first.group(1))
    at_item = rf" {{{indent}}}-(?:[ \t\r\n]|$)"
    # every line indented no deeper than the items is an item, a comment or blank (the
    # patterns start with a newline, which the regex engine finds fast)
    other = rf"\n(?!{at_item}| {{{indent + 1}}}) {{0,{indent}}}(?! |#|[ \t\r]*(?:\n|$))"
    if re.compile(other).search(text, head.end() - 1):
        return None
    items = re.compile(r"\n" + at_item).finditer(text, head.end() - 1)
    return [found.start() + 1 for found in items]


def rule_pieces(text: str, starts: list[int], chunk: int) -> Iterator[tuple[int, list[Any]]]:
    """(index of its first item, the items parsed) of each piece of `chunk` items, in
    order; raises `NotPlain` where the cut reading does not hold (see the module)."""
    ends = [*starts[chunk::chunk], len(text)]
    for first, end in zip(range(0, len(starts), chunk), ends, strict=True):
        try:
            items = yaml_rs.loads(text[starts[first] : end])
        except yaml_rs.YAMLDecodeError as exc:
            raise NotPlain from exc
        if not isinstance(items, list) or len(items) != len(starts[first : first + chunk]):
            raise NotPlain
        yield first, items
