"""Count every topic's terms in one pass over a story (Aho-Corasick), not one regex per topic.

Twenty topics of thirty terms each, matched by twenty alternation regexes, cost
about 9 ms a story; one automaton over the lower-cased text costs a fraction of
that. Terms match whole words, case-insensitively, with any spacing between the
words of a phrase; a trailing `*` matches any word ending ("elect*": "elections").
Overlapping terms each count: "electric vehicles" is evidence for both
"electric vehicle*" and "vehicle*".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import ahocorasick


@dataclass(frozen=True)
class _Entry:
    group: int
    term: str
    prefix: bool
    length: int


def normalise(text: str) -> str:
    """Lower case, every run of whitespace one space: how both terms and stories are matched."""
    return " ".join(text.lower().split())


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class TermIndex:
    """Terms of several groups (topics); `counts` says how often each term of each group occurs."""

    def __init__(self, groups: Sequence[Sequence[str]]) -> None:
        self._groups = len(groups)
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, list[_Entry]] = {}
        for group, terms in enumerate(groups):
            for term in terms:
                key = normalise(term.rstrip("*"))
                entries.setdefault(key, []).append(
                    _Entry(group, term, term.endswith("*"), len(key))
                )
        for key, found in entries.items():
            self._automaton.add_word(key, tuple(found))
        if entries:
            self._automaton.make_automaton()
        self._empty = not entries

    def counts(self, text: str) -> list[Counter[str]]:
        """Per group, how many times each of its terms occurs in `text` as whole words."""
        counts: list[Counter[str]] = [Counter() for _ in range(self._groups)]
        if self._empty or not text:
            return counts
        haystack = normalise(text)
        for end, entries in self._automaton.iter(haystack):
            start = end - entries[0].length + 1
            if start > 0 and _is_word_char(haystack[start - 1]):
                continue
            whole = end + 1 == len(haystack) or not _is_word_char(haystack[end + 1])
            for entry in entries:
                if whole or entry.prefix:
                    counts[entry.group][entry.term] += 1
        return counts
