"""What the config files share: strict frozen sections, ids, and error lines that name
the file, the entry and the field.

Every file newsmon reads (newsmon.yaml, feeds.yaml, rules.yaml, topics.yaml) is
validated with pydantic; a `ValidationError` becomes lines such as
`configs/rules.yaml: rules[2] (id 'tesla'): field 'terms': List should have ...`,
so a user can find the mistake without reading a traceback.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
import yaml_rs
from pydantic import BaseModel, ConfigDict, ValidationError

# Tags pydantic puts in an error's location to say which shape of a value it read
# ("plain" or "scoped" term); the user wrote neither, so they are left out.
SHAPE_TAGS = frozenset({"plain", "scoped"})

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"

# Labels of spaCy's English NER models (OntoNotes 5).
ENTITY_LABELS = frozenset(
    {
        "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART",
        "LAW", "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL",
    }
)  # fmt: skip


class Section(BaseModel):
    """A part of a config file: unknown keys are errors, values never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# A build this large (rules) is frozen out of the collector's later passes; smaller ones
# (the console's trials and previews, made per request) gain nothing from it.
FREEZE_AT = 10_000
# A rules file this large is collected before it is read, so that no pending garbage
# cycle is frozen with its rules (10,000 rules take more than this).
COLLECT_AT_BYTES = 128 * 1024


@contextmanager
def bulk_objects(*, freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector while a large config is built; with `freeze`,
    keep what was built out of its later passes.

    Validating or compiling 100,000 rules creates millions of small objects, none in a
    reference cycle; each of them would trigger the collector's generational passes over
    all the objects made so far, which doubles the time. They are freed by reference
    counting as usual. Frozen afterwards (`gc.freeze`), the survivors are not walked again
    by the collector's next passes, three times over as they age (0.6 s for 100,000
    rules), nor by every full collection after that. Frozen objects are still freed by
    reference counting; only a garbage cycle pending when they are frozen would stay, so
    the rules loader collects before it reads a large file (`collect_before_reading`).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if freeze:
                gc.freeze()
            gc.enable()


def collect_before_reading(path: Path) -> None:
    """A full collection before a large rules file is read, so that no pending garbage cycle
    is frozen with its rules (cheap then: what earlier builds froze is skipped)."""
    try:
        large = path.stat().st_size >= COLLECT_AT_BYTES
    except OSError:
        return
    if large:
        gc.collect()


def reject_duplicates(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def clean_terms(terms: list[str]) -> list[str]:
    """Watch terms and topic terms: no blanks, and '*' (prefix match) only at the end."""
    return [clean_term(t) for t in terms]


def clean_term(term: str) -> str:
    cleaned = term.strip()
    if not cleaned or cleaned == "*":
        raise ValueError("terms must not be empty")
    if "*" in cleaned[:-1]:
        raise ValueError(f"{cleaned!r}: '*' is only allowed at the end of a term")
    return cleaned


_LABELS = {label: label for label in ENTITY_LABELS}


def known_entity_label(label: str) -> str:
    """The label, upper-cased: the one string of it (a watch list names `ORG` 100,000 times)."""
    known = _LABELS.get(label.upper())
    if known is None:
        names = ", ".join(sorted(ENTITY_LABELS))
        raise ValueError(f"unknown entity label {label!r} (known: {names})")
    return known


def read_yaml(
    path: Path, problems: list[str], *, what: str = "", large: bool = False
) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a problem line (naming `what` setting points
    at the file, if given) instead of an exception when it is missing or malformed."""
    text = read_text(path, problems, what=what)
    return {} if text is None else parse_yaml(path, text, problems, large=large)


def read_text(path: Path, problems: list[str], *, what: str = "") -> str | None:
    """A config file's text; None, with a problem line, when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{path}: file not found" + (f" ({what})" if what else ""))
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}")
    return None


def parse_yaml(
    path: Path, text: str, problems: list[str], *, large: bool = False
) -> dict[str, Any]:
    """The top-level mapping of a config file's text (a problem line if it is not one).

    `large` files (rules.yaml: a watch list may hold 100,000 rules) are read with the
    Rust parser of yaml-rs, 15x faster than PyYAML's libyaml loader, whose objects are
    built in Python. It reads YAML 1.2: `no`, `on` are strings, not booleans (a bool
    field still takes them), and a key given twice is an error instead of a silent
    overwrite.
    """
    try:
        data = yaml_rs.loads(text) if large else yaml.safe_load(text)
    except (yaml.YAMLError, yaml_rs.YAMLDecodeError) as exc:
        problems.append(f"{path}: not valid YAML: {exc}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return {}
    return data


def describe(source: str | Path, exc: ValidationError, entries: Any = None) -> list[str]:
    """One line per error: '<file>: <list>[<n>] (id '<id>'): field '<field>': <message>'.

    `entries` is the raw list the entries came from (feeds, rules, topics), so that an
    entry is named by its id, name or url as the user wrote it.
    """
    return [
        f"{source}: {_where(error['loc'], entries)}: {message(error)}" for error in exc.errors()
    ]


def _where(loc: Sequence[int | str], entries: Any) -> str:
    if len(loc) < 2 or not isinstance(loc[1], int) or entries is None:
        return f"field '{'.'.join(map(str, loc))}'" if loc else "top level"
    index = loc[1]
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    rest = ".".join(str(part) for part in loc[2:] if part not in SHAPE_TAGS)
    return f"{loc[0]}[{index}]{entry_name(entry)}" + (f": field '{rest}'" if rest else "")


def entry_name(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    key = "id" if "id" in entry else "name" if "name" in entry else "url"
    return f" ({key} {entry[key]!r})" if entry.get(key) else ""


def message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    # Rule fields are tuples (immutable, no per-rule default lists); YAML calls them lists.
    return str(error["msg"]).removeprefix("Value error, ").replace("Tuple should", "List should")
