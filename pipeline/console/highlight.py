"""Story text with its rule matches and entities marked, as safe HTML. Pure.

Every story field is untrusted text from the internet: each piece is escaped here, and
only the `<mark>` and `<span>` tags this module writes are markup. Spans may overlap
(a rule match inside an entity, two entities sharing a word): the text is cut at every
span edge and each piece carries the classes of all spans that cover it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from markupsafe import Markup, escape

from pipeline.models import EnrichedStory, TextField
from pipeline.rules.match import Verdict

_LABEL = re.compile(r"[^A-Z_]")
_MARKED = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
KNOWN_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "PRODUCT", "EVENT", "FAC", "WORK_OF_ART", "LAW"}
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    css: str
    """Class names, from this module only (never from story data)."""
    title: str = ""
    """Tooltip: a rule id or an entity label (escaped like any text)."""


def label_class(label: str) -> str:
    """`ent-ORG` for the labels the stylesheet colours, `ent-other` for the rest."""
    clean = _LABEL.sub("", label.upper())
    return f"ent-{clean}" if clean in KNOWN_LABELS else "ent-other"


def story_spans(story: EnrichedStory, verdicts: Sequence[Verdict]) -> dict[TextField, list[Span]]:
    """Per field: each entity mention, each hit of a rule that fired or came close."""
    spans: dict[TextField, list[Span]] = {"title": [], "summary": [], "text": []}
    for entity in story.entities:
        css = f"ent {label_class(entity.label)}"
        for m in entity.mentions:
            spans[m.field].append(Span(m.start, m.end, css, f"{entity.label}: {entity.text}"))
    for verdict in verdicts:
        css = "hit" if verdict.fired else "near"
        for hit in verdict.hits:
            spans[hit.field].append(Span(hit.start, hit.end, css, f"rule {verdict.rule.id}"))
    return spans


def annotate(text: str, spans: Iterable[Span]) -> Markup:
    """`text` escaped, each piece wrapped in the spans covering it."""
    usable = [s for s in spans if 0 <= s.start < s.end <= len(text)]
    usable.sort(key=lambda s: s.css in ("hit", "near"))  # rule marks wrap entities
    cuts = sorted({0, len(text), *(s.start for s in usable), *(s.end for s in usable)})
    out: list[str] = []
    for a, b in pairwise(cuts):
        piece = str(escape(text[a:b]))
        for span in (s for s in usable if s.start <= a and b <= s.end):
            tag = "mark" if span.css in ("hit", "near") else "span"
            piece = f'<{tag} class="{span.css}" title="{escape(span.title)}">{piece}</{tag}>'
        out.append(piece)
    return Markup("".join(out))


def annotate_paragraphs(text: str, spans: Iterable[Span]) -> list[Markup]:
    """Each paragraph (line) of `text` annotated on its own, so that the page can set
    them apart; a span that runs over a line break is cut in two, one part each side."""
    usable = list(spans)
    paragraphs: list[Markup] = []
    start = 0
    for line in text.split("\n"):
        end = start + len(line)
        if line.strip():
            inside = [
                replace(s, start=max(s.start, start) - start, end=min(s.end, end) - start)
                for s in usable
                if s.start < end and s.end > start
            ]
            paragraphs.append(annotate(line, inside))
        start = end + 1
    return paragraphs


def marked_snippet(snippet: str) -> Markup:
    """An alert snippet ('…the **match** here…') escaped, the match in `<mark>`."""
    out: list[str] = []
    at = 0
    for found in _MARKED.finditer(snippet):
        out.append(str(escape(snippet[at : found.start()])))
        out.append(f'<mark class="hit">{escape(found.group(1))}</mark>')
        at = found.end()
    out.append(str(escape(snippet[at:])))
    return Markup("".join(out))
