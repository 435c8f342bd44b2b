"""`newsmon extractor` (the Kafka worker) and `newsmon enrich` (the same enrichment offline)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pipeline.cli_common import add_config_options, add_fetch_options, load_from_args
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.metrics import Metrics
from pipeline.runtime import Liveness, setup_logging, start_metrics, stop_event

log = logging.getLogger(__name__)


def check_models(settings: Settings) -> None:
    """`newsmon check-config`: every NER model is installed (the taxonomy is checked at load).

    All missing models are reported together, each naming its setting.
    """
    from pipeline.extractor.entities import check_installed  # spaCy: only when checking

    problems: list[str] = []
    for language, name in settings.nlp.models.items():
        try:
            check_installed(name, language)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)


SETTINGS_CHECKS = [check_models]


def cmd_extractor(args: argparse.Namespace) -> int:
    from pipeline.extractor.worker import run_extractor

    config = load_from_args(args)
    settings = config.settings
    setup_logging(settings.log)
    metrics = Metrics()
    stop = stop_event()
    liveness = Liveness(settings.kafka.max_poll_interval_seconds)
    start_metrics(settings, metrics, health=liveness, kafka=True)
    run_extractor(settings, config.taxonomy, metrics, stop, on_round=liveness.beat)
    return 0


def cmd_enrich(args: argparse.Namespace) -> int:
    """Exit status 1 when any input line was rejected (the others are still written)."""
    from pipeline.extractor.enrich import Enricher
    from pipeline.extractor.offline import enrich_stream

    overrides: dict[str, Any] = {}
    if args.batch_size is not None:
        overrides["nlp"] = {"batch_size": args.batch_size}
    config = load_from_args(args, **overrides)
    settings = config.settings
    setup_logging(settings.log)
    enricher = Enricher.from_settings(settings, taxonomy=config.taxonomy)
    done, rejected = enrich_stream(
        enricher, sys.stdin, sys.stdout, sys.stderr, batch_size=settings.nlp.batch_size
    )
    log.info("enrich finished", extra={"enriched": done, "rejected": rejected})
    return 1 if rejected else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "extractor",
        help="Kafka worker: raw stories in, enriched stories (text, entities, topics) out",
    )
    add_config_options(worker)
    add_fetch_options(worker)
    worker.set_defaults(func=cmd_extractor)

    offline = sub.add_parser(
        "enrich",
        help="enrich JSON lines {url, html, title?, summary?} from stdin to stdout, no broker",
    )
    add_config_options(offline)
    offline.add_argument("--batch-size", type=int, default=None, help="stories per NER batch")
    offline.set_defaults(func=cmd_enrich)
