"""One typed configuration, loaded once at the edge (the CLI) and passed down.

- `settings`: the tree of newsmon.yaml (Kafka, HTTP, poller, extraction, NLP, rules,
  notifier, metrics, log), with env and `*_FILE` overrides;
- `feeds`, `rules`, `taxonomy`: the schemas of feeds.yaml, rules.yaml and topics.yaml;
- `load`: reads them together into a `Config`; every problem is reported at once,
  each naming the file, the entry and the field;
- `defaults/`: the example configs and the default taxonomy, shipped in the package.

Stages receive what they need from the `Config` (the extractor the validated
taxonomy, the rules stage its rules) and read no file of their own, except the
rules file that `newsmon rules` reloads while it runs.
"""

from pipeline.config.feeds import Feed, FeedsFile, parse_duration
from pipeline.config.load import (
    DEFAULT_CONFIG,
    DEFAULT_FEEDS,
    DEFAULT_RULES,
    DEFAULT_STATE_DIR,
    Config,
    default_file,
    load_config,
    load_feeds,
    load_rules,
    rules_problems,
)
from pipeline.config.rules import Rule, RulesFile, Term
from pipeline.config.schema import ENTITY_LABELS, Section
from pipeline.config.settings import (
    DEFAULTS_DIR,
    ENV_DELIMITER,
    ENV_PREFIX,
    ConsoleSettings,
    Destination,
    ExtractionSettings,
    HttpSettings,
    KafkaSettings,
    LogSettings,
    MetricsSettings,
    NlpSettings,
    NotifierSettings,
    PollerSettings,
    RulesSettings,
    Settings,
    TopicNames,
)
from pipeline.config.taxonomy import TaxonomyFile, Topic, load_taxonomy_file

__all__ = [
    "DEFAULTS_DIR",
    "DEFAULT_CONFIG",
    "DEFAULT_FEEDS",
    "DEFAULT_RULES",
    "DEFAULT_STATE_DIR",
    "ENTITY_LABELS",
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "Config",
    "ConsoleSettings",
    "Destination",
    "ExtractionSettings",
    "Feed",
    "FeedsFile",
    "HttpSettings",
    "KafkaSettings",
    "LogSettings",
    "MetricsSettings",
    "NlpSettings",
    "NotifierSettings",
    "PollerSettings",
    "Rule",
    "RulesFile",
    "RulesSettings",
    "Section",
    "Settings",
    "TaxonomyFile",
    "Term",
    "Topic",
    "TopicNames",
    "default_file",
    "load_config",
    "load_feeds",
    "load_rules",
    "load_taxonomy_file",
    "parse_duration",
    "rules_problems",
]
