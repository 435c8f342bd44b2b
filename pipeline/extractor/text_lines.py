"""Drop the boilerplate lines that survive extraction.

Some furniture sits inside the article container itself, where no DOM rule can
tell it from prose: the headline repeated above the body, "Related: ..." links
between paragraphs, "Follow us on Twitter" and newsletter pitches at the end.
They are recognised by what they say. The phrases are the generic ones news
sites share, in English and the languages of `furniture_phrases`; nothing here
is specific to a site.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.extractor.furniture_phrases import LABELS, PITCHES, TEASERS

_WORD = re.compile(r"\w+")
_SHORT_LINE = 220
# a label that introduces a link to another story: "Related: ...", "SEE MORE: ..."
_TEASER = re.compile(
    r"^\W*(?:related(?: stories| articles| content| news| reading)?|read (?:more|also|next)"
    r"|see (?:more|also)|more(?: on this| from \w+)?|also read|don'?t miss|recommended"
    r"|watch|listen|trending|most (?:read|popular|viewed)|advertisement|sponsored"
    rf"|{TEASERS})"
    r"\b\s*(?:[:|>»\-\uff1a]|$)",
    re.IGNORECASE,
)
# a whole line that is a section label of page furniture
_LABEL = re.compile(
    r"^\W*(?:related(?: \w+)?|comments?|\d+ comments?|leave a (?:comment|reply)"
    r"|tell us what you think\W*|share(?: this(?: \w+)?)?|advertisement|sponsored(?: \w+)?"
    rf"|{LABELS})\W*$",
    re.IGNORECASE,
)
# a call to action aimed at the reader rather than a report of facts
_PITCH = re.compile(
    r"^\W*(?:follow\b.{0,60}\b(?:twitter|facebook|instagram|linkedin|youtube|tiktok|threads)\b"
    r"|get (?:the|our) (?:latest|best|top)\b|get access to\b|join (?:us|our|the conversation)\b"
    r"|download (?:our|the) app\b|listen (?:to|live)\b|if you enjoyed this\b|have a tip\b"
    r"|please enter your\b|(?:sign|log) in to\b|©|copyright\b.{0,60}\b(?:19|20)\d\d\b)"
    r"|\b(?:subscrib\w+|sign(?:ing)? up)\b.{0,60}\b(?:newsletters?|inbox)\b"
    r"|\b(?:newsletters?|inbox)\b.{0,60}\b(?:subscrib\w+|sign(?:ing)? up)\b"
    r"|\ball rights reserved\b"
    rf"|^\W*(?:{PITCHES})",
    re.IGNORECASE,
)
_TITLE_SEPARATOR = re.compile(r"\s+[|\-\u2013\u2014\u00b7\u2022]{1,2}\s+")
_MIN_SEGMENT_WORDS = 3


def drop_boilerplate_lines(text: str, title: str | None) -> str:
    """The text without furniture lines; paragraphs stay separated by one newline."""
    kept = (line for line in text.splitlines() if not _is_boilerplate(line))
    return "\n".join(_drop_titles(kept, title))


def _is_boilerplate(line: str) -> bool:
    if len(line) > _SHORT_LINE:
        return False
    return bool(_TEASER.search(line) or _LABEL.search(line) or _PITCH.search(line))


def _drop_titles(lines: Iterable[str], title: str | None) -> Iterable[str]:
    """The headline is metadata, not story text; sites often repeat it above the body.

    Lines without a single word (rules, dingbats, table borders) go too.
    """
    headlines = _headlines(title or "")
    for line in lines:
        if len(line) > _SHORT_LINE:
            yield line  # a paragraph, not a headline (and too long to be worth tokenising)
            continue
        words = tuple(_words(line))
        if words and words not in headlines:
            yield line


def _headlines(title: str) -> set[tuple[str, ...]]:
    """The title, and its parts when it also names the site ("Story | Site")."""
    segments = [title, *_TITLE_SEPARATOR.split(title)]
    candidates = {tuple(_words(segment)) for segment in segments}
    return {c for c in candidates if len(c) >= _MIN_SEGMENT_WORDS or c == tuple(_words(title))}


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]
