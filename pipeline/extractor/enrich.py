"""The extractor's transform: a RawStory and what fetching its page gave, to an EnrichedStory.

No sockets here: pages arrive already fetched (or failed), so the Kafka worker,
`newsmon run` and `newsmon enrich` share this code and tests feed it bytes. A
story is never lost to its page: a timeout, a PDF, a 404, a paywall or a page
with too little text all fall back to the feed's title and summary, and
`fallback_reason` says why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from spacy.language import Language

from pipeline.config import ExtractionSettings, NlpSettings, Settings, TaxonomyFile
from pipeline.errors import ExtractionRejected
from pipeline.extractor.entities import Found, fold_entities, load_ner, read_story, recognise
from pipeline.extractor.language import LanguageDecision, decide_language, language_label
from pipeline.extractor.text import Article, extract_article
from pipeline.extractor.topics import Taxonomy, compile_taxonomy, score_topics
from pipeline.metrics import Metrics
from pipeline.models import (
    EnrichedStory,
    Entity,
    LanguageSource,
    RawStory,
    TextField,
    TextSource,
    utcnow,
)

log = logging.getLogger(__name__)

# Content types that are certainly not a page of text; anything else is sniffed by extraction.
_NOT_HTML_PREFIXES = (
    "image/", "audio/", "video/", "font/", "application/pdf", "application/zip",
    "application/vnd.", "application/msword",
)  # fmt: skip
_NOT_HTML_TYPES = frozenset({"application/json", "text/csv", "text/calendar"})


@dataclass(frozen=True)
class FetchedPage:
    """A page body as fetched; `content_type` as the server declared it (may be empty)."""

    body: bytes | str
    content_type: str = ""
    url: str = ""


@dataclass(frozen=True)
class PageFailed:
    """Fetching the page failed; `reason` is the error's fixed token (timeout, too_large...)."""

    reason: str
    detail: str = ""


PageOutcome = FetchedPage | PageFailed


@dataclass(frozen=True)
class StoryText:
    """The text chosen for a story, and where it came from."""

    title: str
    text: str
    source: TextSource
    fallback_reason: str | None = None
    author: str | None = None
    language: str | None = None
    language_source: LanguageSource | None = None


# --- choosing the text -------------------------------------------------------------------


def is_html_type(content_type: str) -> bool:
    """False only for types that cannot be a page of text; missing or vague types are sniffed."""
    media = content_type.split(";", 1)[0].strip().lower()
    return not (media.startswith(_NOT_HTML_PREFIXES) or media in _NOT_HTML_TYPES)


def choose_text(
    story: RawStory, outcome: PageOutcome, *, min_chars: int, default_language: str | None = None
) -> StoryText:
    """The page's article text when it has enough, otherwise the feed's title and summary;
    with the language it is written in (`language.decide_language`)."""
    if isinstance(outcome, PageFailed):
        return fallback_text(story, outcome.reason, default_language=default_language)
    if not is_html_type(outcome.content_type):
        return fallback_text(story, "not_html", default_language=default_language)
    try:
        article = extract_article(outcome.body, outcome.url or story.url, min_chars=min_chars)
    except ExtractionRejected as exc:
        return fallback_text(story, exc.reason, default_language=default_language)
    return full_text(story, article, default_language=default_language)


def full_text(
    story: RawStory, article: Article, *, default_language: str | None = None
) -> StoryText:
    decided = _language(article.text, article.language, story.language, default_language)
    return StoryText(
        title=story.title or article.title or "",
        text=article.text,
        source="full_text",
        author=article.author,
        language=decided.language,
        language_source=decided.source,
    )


def fallback_text(
    story: RawStory, reason: str, *, default_language: str | None = None
) -> StoryText:
    """Title and summary stand in for the article, so rules still see what the feed said."""
    parts = [p.strip() for p in (story.title, story.summary) if p.strip()]
    text = "\n\n".join(parts)
    decided = _language(text, None, story.language, default_language)
    return StoryText(
        title=story.title,
        text=text,
        source="summary_fallback",
        fallback_reason=reason,
        language=decided.language,
        language_source=decided.source,
    )


def _language(
    text: str, page: str | None, feed: str | None, default: str | None
) -> LanguageDecision:
    return decide_language(
        text,
        page=normalise_language(page),
        feed=normalise_language(feed),
        default=normalise_language(default),
    )


def normalise_language(code: str | None) -> str | None:
    """'en-US', 'EN_gb' and 'en' are all 'en': models are configured per base language."""
    if not code or not code.strip():
        return None
    return code.strip().replace("_", "-").split("-", 1)[0].lower()


# --- NER inputs and the story ----------------------------------------------------------------


def ner_fields(story: RawStory, chosen: StoryText) -> list[tuple[TextField, str]]:
    """Title and article text; on fallback title and summary (the text is just those two)."""
    body: TextField = "text" if chosen.source == "full_text" else "summary"
    body_text = chosen.text if body == "text" else story.summary
    pairs: list[tuple[TextField, str]] = [("title", chosen.title), (body, body_text)]
    return [(field, text) for field, text in pairs if text]


def build_story(
    story: RawStory,
    chosen: StoryText,
    entities: Sequence[Entity],
    taxonomy: Taxonomy,
    enriched_at: datetime,
    *,
    ner_model: str | None = None,
) -> EnrichedStory:
    topics = score_topics(
        taxonomy, title=chosen.title, text=chosen.text, entities=entities, categories=story.tags
    )
    return EnrichedStory(
        id=story.id,
        url=story.url,
        title=chosen.title,
        summary=story.summary,
        text=chosen.text,
        text_source=chosen.source,
        fallback_reason=chosen.fallback_reason,
        author=chosen.author,
        language=chosen.language,
        language_source=chosen.language_source,
        ner_model=ner_model,
        published=story.published,
        first_seen=story.first_seen,
        enriched_at=enriched_at,
        feed=story.feed,
        tags=story.tags,
        entities=list(entities),
        topics=topics,
    )


# --- the enricher -------------------------------------------------------------------------


class Enricher:
    """Everything the CPU-bound part of the stage needs, loaded once per process.

    The Kafka worker, `newsmon enrich` and each process of `newsmon run` hold one
    and call `enrich_batch`; NER runs once per language over the whole batch.
    """

    def __init__(
        self,
        nlp: NlpSettings,
        extraction: ExtractionSettings,
        *,
        metrics: Metrics | None = None,
        taxonomy: Taxonomy | TaxonomyFile,
        models: Mapping[str, Language] | ModelShelf | None = None,
    ) -> None:
        """`taxonomy`: the validated one the config loaded (`Config.taxonomy`), compiled
        here, in the process that scores with it: no file is read below the edge."""
        self.nlp_settings = nlp
        self.min_chars = extraction.min_text_chars
        self.metrics = metrics
        if isinstance(taxonomy, TaxonomyFile):
            taxonomy = compile_taxonomy(taxonomy)
        self.taxonomy = taxonomy
        self.models = models if isinstance(models, ModelShelf) else ModelShelf(nlp, models)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        taxonomy: TaxonomyFile,
        metrics: Metrics | None = None,
    ) -> Enricher:
        return cls(settings.nlp, settings.extraction, metrics=metrics, taxonomy=taxonomy)

    @property
    def default_language(self) -> str | None:
        return self.nlp_settings.default_language

    def enrich(self, story: RawStory, outcome: PageOutcome) -> EnrichedStory:
        return self.enrich_batch([(story, outcome)])[0]

    def enrich_batch(self, items: Sequence[tuple[RawStory, PageOutcome]]) -> list[EnrichedStory]:
        """One EnrichedStory per item, in order."""
        chunk = self.enrich_chunk(items)
        if self.metrics is not None:
            record_enriched(self.metrics, chunk)
        return chunk.stories

    def enrich_chunk(self, items: Sequence[tuple[RawStory, PageOutcome]]) -> Enriched:
        """The stories and what their phases took, for a registry in another process."""
        started = time.perf_counter()
        chunk = Enriched(stories=[])
        chosen = [self._choose(story, outcome, chunk) for story, outcome in items]
        stories = [story for story, _ in items]
        entities = self._entities(stories, chosen, chunk)
        now = utcnow()
        chunk.stories.extend(
            build_story(
                story, text, found, self.taxonomy, now, ner_model=self.models.name(text.language)
            )
            for story, text, found in zip(stories, chosen, entities, strict=True)
        )
        chunk.seconds = time.perf_counter() - started
        return chunk

    def _choose(self, story: RawStory, outcome: PageOutcome, chunk: Enriched) -> StoryText:
        started = time.perf_counter()
        try:
            chosen = choose_text(
                story, outcome, min_chars=self.min_chars, default_language=self.default_language
            )
        except Exception:
            # A parser crash on one odd page must not cost the story: fall back and say so.
            log.exception("extraction crashed story_id=%s feed=%s", story.id, story.feed)
            chosen = fallback_text(story, "extractor_error", default_language=self.default_language)
        if isinstance(outcome, FetchedPage):
            chunk.extraction_seconds.append(time.perf_counter() - started)
        if chosen.fallback_reason is not None:
            log.info(
                "summary fallback story_id=%s feed=%s reason=%s",
                story.id, story.feed, chosen.fallback_reason,
            )  # fmt: skip
        return chosen

    def _entities(
        self, stories: Sequence[RawStory], chosen: Sequence[StoryText], chunk: Enriched
    ) -> list[list[Entity]]:
        fields = [ner_fields(story, text) for story, text in zip(stories, chosen, strict=True)]
        found: list[list[tuple[TextField, Sequence[Found]]]] = [[] for _ in stories]
        for language, indexes in _by_language(chosen):
            nlp = self.models.get(language)
            if nlp is not None:
                self._recognise(nlp, indexes, fields, found, chunk)
        return [
            fold_entities(read_story(_with_texts(story_found, story_fields)))
            for story_found, story_fields in zip(found, fields, strict=True)
        ]

    def _recognise(
        self,
        nlp: Language,
        indexes: Sequence[int],
        fields: Sequence[list[tuple[TextField, str]]],
        found: list[list[tuple[TextField, Sequence[Found]]]],
        chunk: Enriched,
    ) -> None:
        """One `nlp.pipe` over all fields of the stories at `indexes`; spans go back in place."""
        places = [(i, field) for i in indexes for field, _ in fields[i]]
        texts = [text for i in indexes for _, text in fields[i]]
        started = time.perf_counter()
        spans = recognise(
            nlp,
            texts,
            batch_size=self.nlp_settings.batch_size,
            max_chars=self.nlp_settings.max_chars,
        )
        per_story = (time.perf_counter() - started) / max(len(indexes), 1)
        for (i, field), story_spans in zip(places, spans, strict=True):
            found[i].append((field, story_spans))
        chunk.ner_seconds.extend(per_story for _ in indexes)


@dataclass
class Enriched:
    """A chunk's stories and the time its phases took, so that a process pool's parent,
    which holds the metrics registry, can count what its children did."""

    stories: list[EnrichedStory]
    extraction_seconds: list[float] = dataclasses.field(default_factory=list)  # per page extracted
    ner_seconds: list[float] = dataclasses.field(default_factory=list)  # per story that ran NER
    seconds: float = 0.0  # the whole chunk


def record_enriched(metrics: Metrics, chunk: Enriched) -> None:
    for story in chunk.stories:
        count_story(metrics, story)
    for seconds in chunk.extraction_seconds:
        metrics.extraction_seconds.observe(seconds)
    for seconds in chunk.ner_seconds:
        metrics.ner_seconds.observe(seconds)


def count_story(metrics: Metrics, story: EnrichedStory) -> None:
    """Outcome, language, text length and entity count of one enriched story (public so a
    process pool's parent can count what its children enriched)."""
    metrics.stories_enriched.labels(story.text_source).inc()
    metrics.count_language(language_label(story.language), story.language_source or "default")
    metrics.text_chars.observe(len(story.text))
    metrics.entities_per_story.observe(len(story.entities))


def _with_texts(
    found: Sequence[tuple[TextField, Sequence[Found]]], fields: Sequence[tuple[TextField, str]]
) -> list[tuple[TextField, str, Sequence[Found]]]:
    """Each field's spans beside the text NER read, so a name is read in its sentence."""
    texts = dict(fields)
    return [(field, texts[field], spans) for field, spans in found]


def _by_language(chosen: Sequence[StoryText]) -> Iterator[tuple[str, list[int]]]:
    groups: dict[str, list[int]] = {}
    for index, text in enumerate(chosen):
        groups.setdefault(text.language or "", []).append(index)
    yield from groups.items()


class ModelShelf:
    """The NER model of each configured language, loaded when a story in that language first
    needs it: a French model costs a process memory (and seconds to load) only once French
    stories arrive. The default language's model is loaded at once, so a pool process is
    ready for the common case when it says it started. A package that serves several
    languages is loaded once."""

    def __init__(self, nlp: NlpSettings, injected: Mapping[str, Language] | None = None) -> None:
        if injected is not None:
            self._names = {lang: _model_label(model) for lang, model in injected.items()}
            self._loaded: dict[str, Language] = dict(injected)
            self._by_name: dict[str, Language] = {}
            return
        self._names = {normalise_language(lang) or lang: name for lang, name in nlp.models.items()}
        self._loaded = {}
        self._by_name = {}
        default = normalise_language(nlp.default_language)
        if default in self._names:
            self.get(default)

    def name(self, language: str | None) -> str | None:
        """The model configured for a language (what the story records as `ner_model`)."""
        return self._names.get(language or "")

    def get(self, language: str) -> Language | None:
        """The language's model, loaded now if it is configured and not loaded yet."""
        if language in self._loaded or language not in self._names:
            return self._loaded.get(language)
        name = self._names[language]
        if name not in self._by_name:
            self._by_name[name] = load_ner(name, language=language)
        self._loaded[language] = self._by_name[name]
        return self._loaded[language]

    def __getitem__(self, language: str) -> Language:
        """The language's model (loaded now if need be); KeyError when none is configured."""
        model = self.get(language)
        if model is None:
            raise KeyError(language)
        return model

    def loaded(self) -> dict[str, Language]:
        return dict(self._loaded)


def _model_label(model: Language) -> str:
    meta = model.meta
    return f"{meta.get('lang', '')}_{meta.get('name', 'model')}"
