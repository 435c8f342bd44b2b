"""Every Prometheus metric newsmon exports, built against an injectable registry.

Conventions: seconds not milliseconds, `_total` on counters, an `outcome` label
of a few fixed values, labels pre-initialised where the values are known, and
no unbounded labels (feed names, rule ids and destination ids come from config
and are bounded; URLs never appear).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

STAGES = ("poller", "extractor", "rules", "notifier")
POLL_OUTCOMES = ("ok", "not_modified", "error", "throttled")
ENTRY_KINDS = ("seen", "new", "duplicate")
ENRICH_OUTCOMES = ("full_text", "summary_fallback", "failed")
LANGUAGE_SOURCES = ("page", "feed", "detected", "default")
UNREAD_ENTITY_POLICIES = ("terms", "skip")
DELIVERY_OUTCOMES = ("delivered", "retry", "dead_letter", "already_delivered")
RECORD_OUTCOMES = ("ok", "skipped", "retried", "dead_letter")
FLOOD_CHECK_OUTCOMES = ("ok", "flood", "partial", "no_history", "error")
RESTORE_MODES = ("full", "catch_up")

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


OTHER_RULES = "_other"
DEFAULT_RULE_SERIES = 1000
SEVERITIES = ("info", "low", "medium", "high", "critical")


class RuleSeries:
    """`newsmon_alerts_total{rule,severity}` with a bounded number of rule values.

    A watch list of 100,000 rules must not mean 100,000 series (each costs the process
    memory and Prometheus a time series). Up to `cap` rules get a series of their own:
    all of them, pre-created at zero, when the rules fit under the cap; otherwise the
    first rules to fire since start, as they fire. The alerts of every other rule are
    counted under rule="_other", so the sum over rules stays the number of alerts. A
    reload removes the series of rules that left the file, which frees their places.
    """

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.cap = DEFAULT_RULE_SERIES
        self._own: set[str] = set()

    def labels(self, rule_id: str, severity: str) -> Any:
        """The series to count an alert of this rule in (its own, or `_other`)."""
        if rule_id not in self._own:
            if len(self._own) >= self.cap:
                return self.counter.labels(OTHER_RULES, severity)
            self._own.add(rule_id)
        return self.counter.labels(rule_id, severity)

    def declare(self, rules: list[tuple[str, str]], cap: int) -> None:
        self.cap = cap
        present = {rule_id for rule_id, _ in rules}
        gone = [key for key in self._series() if key[0] != OTHER_RULES and key[0] not in present]
        for labels in gone:  # (the rule set is not copied per series: 100,000 rules)
            self.counter.remove(*labels)
        self._own &= present
        if len(present) <= cap:
            for rule_id, severity in rules:
                self._own.add(rule_id)
                self.counter.labels(rule_id, severity)
        else:
            for severity in SEVERITIES:
                self.counter.labels(OTHER_RULES, severity)

    def _series(self) -> list[tuple[str, ...]]:
        return [
            (sample.labels["rule"], sample.labels["severity"])
            for family in self.counter.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        ]


class Metrics:
    """All metrics of all stages; a worker uses the ones of its stage."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # -- records through the Kafka corridor, any stage
        self.records = Counter(
            "newsmon_records_total",
            "Records handled by a stage, by outcome.",
            ["stage", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "newsmon_dead_letters_total",
            "Records sent to the dead-letter topic, by stage and reason.",
            ["stage", "reason"],
            registry=r,
        )
        self.membership_lapsed = Counter(
            "newsmon_group_membership_lapsed_total",
            "Polls whose records were left to their partitions' new owner: the worker had been "
            "dropped from its consumer group without knowing (a broker outage, a frozen process).",
            ["stage"],
            registry=r,
        )
        self.stage_errors = Counter(
            "newsmon_stage_errors_total",
            "Errors raised while handling a record, by stage and reason.",
            ["stage", "reason"],
            registry=r,
        )
        self.handle_seconds = Histogram(
            "newsmon_handle_seconds",
            "Time to handle one record in a stage.",
            ["stage"],
            buckets=_FAST,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "newsmon_consumer_lag",
            "Records not yet consumed, per topic and partition.",
            ["stage", "topic", "partition"],
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "newsmon_end_to_end_seconds",
            "From a poller first seeing a story to its alert being delivered.",
            buckets=_SLOW,
            registry=r,
        )

        # -- the broker, as each Kafka client of a worker sees it (client: a bounded name
        #    such as extractor, notifier-retry, poller)
        self.kafka_up = Gauge(
            "newsmon_kafka_up",
            "1 while the broker answers this client, 0 while it is unreachable (or not yet "
            "reached); /readyz answers 503 while any is 0.",
            ["client"],
            registry=r,
        )
        self.kafka_unavailable_seconds = Counter(
            "newsmon_kafka_unavailable_seconds_total",
            "Seconds this client spent waiting for an unreachable broker.",
            ["client"],
            registry=r,
        )
        self.kafka_outages = Counter(
            "newsmon_kafka_outages_total",
            "Times this client lost the broker and waited for it.",
            ["client"],
            registry=r,
        )

        # -- state stores (rules, notifier): a partition's cache brought up to its changelog
        #    on assignment; mode: full (replayed from the start) or catch_up (from the
        #    offset the cache reflected)
        self.state_restored_records = Counter(
            "newsmon_state_restored_records_total",
            "Changelog records replayed into a state store's cache on assignment, by store "
            "and table.",
            ["store", "table"],
            registry=r,
        )
        self.state_restore_seconds = Histogram(
            "newsmon_state_restore_seconds",
            "Time to bring one partition of a state store up to its changelog on assignment, "
            "by store and mode (full, catch_up).",
            ["store", "mode"],
            buckets=_SLOW,
            registry=r,
        )

        # -- poller
        self.polls = Counter(
            "newsmon_feed_polls_total", "Feed polls by outcome.", ["outcome"], registry=r
        )
        self.entries = Counter(
            "newsmon_feed_entries_total",
            "Feed entries by kind: seen, new (published), duplicate.",
            ["kind"],
            registry=r,
        )
        self.fetch_seconds = Histogram(
            "newsmon_fetch_seconds",
            "HTTP fetch duration, by what was fetched.",
            ["kind"],
            buckets=_FAST,
            registry=r,
        )
        self.feed_last_success = Gauge(
            "newsmon_feed_last_success_timestamp_seconds",
            "Unix time of each feed's last successful poll (age = time() - this).",
            ["feed"],
            registry=r,
        )
        self.feeds_in_error = Gauge(
            "newsmon_feeds_in_error", "Feeds whose last poll failed.", registry=r
        )
        self.feeds_owned = Gauge(
            "newsmon_feeds_owned", "Feeds this poller replica is responsible for.", registry=r
        )

        # -- extractor
        self.stories_enriched = Counter(
            "newsmon_stories_enriched_total",
            "Stories enriched, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.extraction_seconds = Histogram(
            "newsmon_extraction_seconds",
            "Main-text extraction duration.",
            buckets=_FAST,
            registry=r,
        )
        self.ner_seconds = Histogram(
            "newsmon_ner_seconds", "Named-entity recognition duration per story.", buckets=_FAST,
            registry=r,
        )  # fmt: skip
        self.text_chars = Histogram(
            "newsmon_story_text_chars",
            "Length of the text a story was enriched with.",
            buckets=(0, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000),
            registry=r,
        )
        self.story_languages = Counter(
            "newsmon_story_languages_total",
            "Stories enriched, by language (ISO 639-1 codes detection knows; others 'other', "
            "none 'unknown') and how it was decided (page, feed, detected, default).",
            ["language", "source"],
            registry=r,
        )
        self.entities_per_story = Histogram(
            "newsmon_story_entities",
            "Unique entities per story.",
            buckets=(0, 1, 2, 5, 10, 20, 50, 100),
            registry=r,
        )

        # -- rules
        self.stories_matched = Counter(
            "newsmon_stories_matched_total",
            "Stories checked against the rules, by whether any rule fired.",
            ["matched"],
            registry=r,
        )
        self.alerts = RuleSeries(
            Counter(
                "newsmon_alerts_total",
                f"Alerts raised, by rule and severity (rules past the cap: rule={OTHER_RULES!r}).",
                ["rule", "severity"],
                registry=r,
            )
        )
        self.entity_rules_unread = Counter(
            "newsmon_entity_rules_unread_total",
            "Rules with entity_types whose terms occur in a story no NER model read (no model "
            "for its language), by the policy applied: terms (fired on terms) or skip.",
            ["policy"],
            registry=r,
        )
        self.alerts_suppressed = Counter(
            "newsmon_alerts_suppressed_total",
            "Alerts not raised again, by reason (same_story, near_duplicate, throttled).",
            ["reason"],
            registry=r,
        )
        self.rules_loaded = Gauge("newsmon_rules_loaded", "Rules in the live matcher.", registry=r)
        self.rule_reloads = Counter(
            "newsmon_rule_reloads_total", "Rule reloads by outcome.", ["outcome"], registry=r
        )
        self.rule_flood_checks = Counter(
            "newsmon_rule_flood_checks_total",
            "Reload flood checks by outcome (ok, flood, partial: cut by its deadline, "
            "no_history, error).",
            ["outcome"],
            registry=r,
        )
        self.rule_floods = Counter(
            "newsmon_rule_floods_total",
            "Rules a reload made far noisier than before over the recent history, by kind "
            "(changed, new); the rule is in the warning's log line.",
            ["kind"],
            registry=r,
        )
        self.match_seconds = Histogram(
            "newsmon_match_seconds", "Time to match one story against all rules.", buckets=_FAST,
            registry=r,
        )  # fmt: skip
        self.spikes_fired = Counter(
            "newsmon_spikes_fired_total",
            "Spikes detected by spike rules, by the rule's severity (once per spike).",
            ["severity"],
            registry=r,
        )

        # -- notifier
        self.deliveries = Counter(
            "newsmon_deliveries_total",
            "Delivery attempts by destination and outcome.",
            ["destination", "outcome"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "newsmon_delivery_seconds",
            "Time of one delivery attempt, by destination.",
            ["destination"],
            buckets=_FAST,
            registry=r,
        )
        self.delivery_retries = Counter(
            "newsmon_delivery_retries_total",
            "Deliveries scheduled for another try, by destination.",
            ["destination"],
            registry=r,
        )

        # -- history (newsmon run's store, the console's feeder) and the console
        self.history_records = Counter(
            "newsmon_history_records_total",
            "Records handed to the history store, by kind (story, alert) and outcome "
            "(stored, duplicate, unreadable).",
            ["kind", "outcome"],
            registry=r,
        )
        self.history_pruned = Counter(
            "newsmon_history_pruned_total",
            "Rows deleted from the history store past its retention, by kind.",
            ["kind"],
            registry=r,
        )
        self.console_requests = Counter(
            "newsmon_console_requests_total",
            "Console HTTP requests, by page and status class (2xx, 3xx, 4xx, 5xx).",
            ["page", "status"],
            registry=r,
        )
        self.console_request_seconds = Histogram(
            "newsmon_console_request_seconds",
            "Time to answer a console request, by page.",
            ["page"],
            buckets=_FAST,
            registry=r,
        )
        self.console_logins = Counter(
            "newsmon_console_logins_total",
            "Console login attempts by outcome (ok, failed, throttled).",
            ["outcome"],
            registry=r,
        )
        self.console_rule_saves = Counter(
            "newsmon_console_rule_saves_total",
            "Rule edits saved from the console, by outcome (ok, invalid, error: not writable).",
            ["outcome"],
            registry=r,
        )

        self._preinitialise()

    def _preinitialise(self) -> None:
        for stage in STAGES:
            self.handle_seconds.labels(stage)
            for outcome in RECORD_OUTCOMES:
                self.records.labels(stage, outcome)
        for outcome in POLL_OUTCOMES:
            self.polls.labels(outcome)
        for kind in ENTRY_KINDS:
            self.entries.labels(kind)
        for kind in ("feed", "page", "webhook"):
            self.fetch_seconds.labels(kind)
        for outcome in ENRICH_OUTCOMES:
            self.stories_enriched.labels(outcome)
        for matched in ("true", "false"):
            self.stories_matched.labels(matched)
        for policy in UNREAD_ENTITY_POLICIES:
            self.entity_rules_unread.labels(policy)
        for source in LANGUAGE_SOURCES:
            self.story_languages.labels("en", source)
            self.story_languages.labels("other", source)
        self._preinitialise_rules()
        self._preinitialise_console()

    def _preinitialise_rules(self) -> None:
        for reason in ("same_story", "near_duplicate", "throttled"):
            self.alerts_suppressed.labels(reason)
        for severity in SEVERITIES:
            self.spikes_fired.labels(severity)
        for outcome in ("ok", "error"):
            self.rule_reloads.labels(outcome)
        for outcome in FLOOD_CHECK_OUTCOMES:
            self.rule_flood_checks.labels(outcome)
        for kind in ("changed", "new"):
            self.rule_floods.labels(kind)

    def _preinitialise_console(self) -> None:
        for kind in ("story", "alert"):
            self.history_pruned.labels(kind)
            for outcome in ("stored", "duplicate", "unreadable"):
                self.history_records.labels(kind, outcome)
        for outcome in ("ok", "failed", "throttled"):
            self.console_logins.labels(outcome)
        for outcome in ("ok", "invalid", "error"):
            self.console_rule_saves.labels(outcome)

    def count_language(self, language: str, source: str) -> None:
        """One story in `language` (already bounded to the known codes by the caller)."""
        self.story_languages.labels(language, source).inc()

    def declare_feeds(self, names: Iterable[str]) -> None:
        for name in names:
            self.feed_last_success.labels(name)

    def declare_rules(
        self, rules: Iterable[tuple[str, str]], cap: int = DEFAULT_RULE_SERIES
    ) -> None:
        """The rules in force: pre-create their alert series if they fit under `cap`."""
        self.alerts.declare(list(rules), cap)

    def declare_state_store(self, store: str, tables: Iterable[str]) -> None:
        """Pre-create a state store's restore series (the store and its tables are fixed)."""
        for table in tables:
            self.state_restored_records.labels(store, table)
        for mode in RESTORE_MODES:
            self.state_restore_seconds.labels(store, mode)

    def declare_destinations(self, ids: Iterable[str]) -> None:
        for dest in ids:
            self.delivery_seconds.labels(dest)
            self.delivery_retries.labels(dest)
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(dest, outcome)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def kafka_clients(self) -> list[str]:
        """The Kafka clients of this process that report `newsmon_kafka_up`."""
        return sorted(s.labels["client"] for f in self.kafka_up.collect() for s in f.samples)

    def brokers_unreachable(self) -> list[str]:
        """The Kafka clients of this process that have not reached the broker (or lost it)."""
        return sorted(
            sample.labels["client"]
            for family in self.kafka_up.collect()
            for sample in family.samples
            if sample.value == 0
        )


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    health: Any
    ready: Any

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/metrics":
            self._reply(200, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = bool(self.health()) if self.health is not None else True
            self._reply(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n", "text/plain")
        elif path == "/readyz":
            live = bool(self.health()) if self.health is not None else True
            reason = "unhealthy (see /healthz)" if not live else None
            reason = reason or (self.ready() if self.ready is not None else None)
            body = b"ready\n" if reason is None else f"not ready: {reason}\n".encode()
            self._reply(200 if reason is None else 503, body, "text/plain")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line."""


def serve_metrics(
    metrics: Metrics, host: str, port: int, health: Any = None, ready: Any = None
) -> ThreadingHTTPServer:
    """Serve `/metrics`, `/healthz` (liveness: `health()` true) and `/readyz` (readiness:
    `ready()` returns None, or the reason it is not ready) on a daemon thread; port 0
    picks a free one."""
    probe = staticmethod(health) if health is not None else None  # a function must not bind
    readiness = staticmethod(ready) if ready is not None else None
    handler = type(
        "MetricsHandler", (_Handler,), {"metrics": metrics, "health": probe, "ready": readiness}
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
