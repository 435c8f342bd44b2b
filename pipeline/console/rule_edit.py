"""Editing one rule of rules.yaml from the console: find its block, check an edit the way
`check-config` does, save atomically keeping the previous file.

Only the edited rule's lines change: the comments and the other rules of the file stay as
the user wrote them. The whole edited file is validated (schema, destinations, terms that
cannot match) before it replaces the old one, and the running workers pick it up as they
pick up any edit (`rules.reload_check_seconds`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import Rule, Settings, load_rules, rules_problems
from pipeline.errors import ConfigError
from pipeline.rules.compile import compile_rules

_ITEM = re.compile(r"^(?P<indent> *)- ")


@dataclass(frozen=True)
class Edit:
    text: str
    """The whole rules file with the edit applied (when `problems` is empty)."""
    rule: Rule | None
    problems: list[str]


def file_version(text: str) -> str:
    """Sent with the editor and checked on save: an edit never overwrites a newer file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def rule_block(text: str, rule_id: str) -> tuple[int, int, str] | None:
    """(first line, line after the last, indent of the dash) of the rule's list item."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        item = _ITEM.match(line)
        if item is None or _item_id(lines, index, len(item.group("indent"))) != rule_id:
            continue
        indent = len(item.group("indent"))
        end = index + 1
        while end < len(lines) and _inside(lines[end], indent):
            end += 1
        while end > index + 1 and not lines[end - 1].strip():
            end -= 1  # trailing blank lines belong between rules
        return index, end, item.group("indent")
    return None


def _inside(line: str, indent: int) -> bool:
    """A line of the item: blank, or indented deeper than its dash."""
    stripped = line.lstrip(" ")
    return not stripped.strip() or len(line) - len(stripped) > indent


def _item_id(lines: list[str], index: int, indent: int) -> str | None:
    end = index + 1
    while end < len(lines) and _inside(lines[end], indent):
        end += 1
    try:
        item = yaml.safe_load("".join(line[indent:] for line in lines[index:end]))
    except yaml.YAMLError:
        return None
    if isinstance(item, list) and item and isinstance(item[0], dict):
        found = item[0].get("id")
        return str(found) if found is not None else None
    return None


def rule_source(text: str, rule_id: str) -> str:
    """The rule as the user wrote it, unindented: what the editor shows."""
    block = rule_block(text, rule_id)
    if block is None:
        return ""
    start, end, indent = block
    lines = text.splitlines(keepends=True)[start:end]
    first = lines[0][len(indent) + 2 :]
    rest = [line[len(indent) + 2 :] if line.strip() else line for line in lines[1:]]
    return "".join([first, *rest])


def apply_edit(text: str, rule_id: str | None, edited: str, path: Path, settings: Settings) -> Edit:
    """The rules file with rule `rule_id` replaced by `edited` (YAML of one rule), or
    appended when `rule_id` is None, and what `check-config` would say of it."""
    try:
        entry = _one_rule(edited)
    except ConfigError as exc:
        return Edit(text, None, exc.problems)
    block = rule_block(text, rule_id) if rule_id else None
    lines = text.splitlines(keepends=True)
    if block is None:
        indent = _list_indent(text)
        updated = text.rstrip("\n") + "\n\n" + _as_item(entry, indent)
    else:
        start, end, indent = block
        updated = "".join([*lines[:start], _as_item(entry, indent), *lines[end:]])
    problems = check_rules_text(updated, path, settings)
    new_id = str(entry.get("id", ""))
    rule = None
    if not problems:
        rule = next((r for r in _rules_of(updated, path) if r.id == new_id), None)
    return Edit(updated, rule, problems)


def _one_rule(edited: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(edited)
    except yaml.YAMLError as exc:
        raise ConfigError([f"the rule is not valid YAML: {exc}"]) from exc
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise ConfigError(["the rule must be a mapping (id: ..., terms: [...], ...)"])
    return data


def _as_item(entry: dict[str, Any], indent: str) -> str:
    dumped = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=96)
    return "".join(indent + line if line.strip() else line for line in dumped.splitlines(True))


def _list_indent(text: str) -> str:
    for line in text.splitlines():
        item = _ITEM.match(line)
        if item:
            return item.group("indent")
    return "  "


@contextmanager
def _scratch_copy(text: str, path: Path) -> Iterator[Path]:
    """`text` in a file named as the rules file, for the loaders that read files. In a
    private temporary directory, not beside the rules file: that directory may be
    read-only (a ConfigMap on Kubernetes), and checking or testing a rule must work there."""
    with tempfile.TemporaryDirectory(prefix="newsmon-console-") as folder:
        scratch = Path(folder) / path.name
        scratch.write_text(text, encoding="utf-8")
        yield scratch


def check_rules_text(text: str, path: Path, settings: Settings) -> list[str]:
    """`check-config`'s messages for this rules text, naming `path`."""
    with _scratch_copy(text, path) as scratch:
        problems = rules_problems(scratch, settings)
        if not problems:
            try:
                compile_rules(load_rules(scratch), scratch)
            except ConfigError as exc:
                problems = list(exc.problems)
    return [p.replace(str(scratch), str(path)) for p in problems]


def _rules_of(text: str, path: Path) -> list[Rule]:
    with _scratch_copy(text, path) as scratch:
        return load_rules(scratch)


def save_rules(path: Path, text: str) -> Path:
    """Replace the rules file atomically; the file it replaces is kept as `<name>.prev`.
    Returns the path of the previous version."""
    previous = path.with_name(path.name + ".prev")
    _write_atomically(previous, path.read_bytes())
    _write_atomically(path, text.encode("utf-8"))
    return previous


def _write_atomically(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    with scratch.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(scratch, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
