"""The schema of feeds.yaml: which feeds the poller reads, how often, with what tags."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pipeline.config.schema import Section, reject_duplicates

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from 600, '600', '10m', '1.5h' or '1d'."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use seconds or e.g. '15m', '2h')")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class Feed(Section):
    url: str
    name: str = ""
    interval: float | None = Field(None, description="Seconds between polls; None = adaptive.")
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip()

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _default_name(self) -> Feed:
        if not self.name:
            parts = urlsplit(self.url)
            object.__setattr__(self, "name", f"{parts.hostname}{parts.path}".rstrip("/"))
        return self


class FeedsFile(Section):
    feeds: list[Feed] = Field(default_factory=list)

    @field_validator("feeds")
    @classmethod
    def _unique(cls, feeds: list[Feed]) -> list[Feed]:
        reject_duplicates((f.name for f in feeds), "feed name")
        reject_duplicates((f.url for f in feeds), "feed url")
        return feeds
