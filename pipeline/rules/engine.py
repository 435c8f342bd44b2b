"""The live rule set: match a story, decide its alerts, reload rules without a restart.

Both corridors call this: the one-process mode matches and decides a story at
once (`process`); the Kafka worker matches (`candidates`) on any replica and
decides (`decide_candidate`) on the replica that owns the rule's partition,
whose state it restores on assignment (`restore`, `drop`). Rules are re-read
when `rules.yaml` changes (checked every `reload_check_seconds`) or on SIGHUP,
and swapped between two stories, so a story is always matched against one
whole rule set and the consumer keeps its position. A rules file that no
longer validates keeps the old rules in force and is counted in
`newsmon_rule_reloads_total{outcome="error"}`.
The old rules' automata and terms are dropped before the new file is read (no story is
matched while it is), and rebuilt from the old rules if it does not compile: a watch list
of 100,000 rules is never compiled twice in memory; only its validated rules are kept
meanwhile.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from datasketch import MinHash

from pipeline.config import Config, Rule, RulesSettings, load_rules
from pipeline.corridor.state import Changelog
from pipeline.errors import ConfigError
from pipeline.metrics import Metrics
from pipeline.models import Alert, AlertStory, EnrichedStory, alert_id_for, decode, utcnow
from pipeline.rules.compile import CompiledRules, compile_rules
from pipeline.rules.dedup import AlertLedger
from pipeline.rules.match import RuleMatch, match_story, matched_terms
from pipeline.rules.store import AlertStore, HeldGroup, SourcePosition

log = logging.getLogger(__name__)

STORE_FILE = "rules.sqlite3"
Clock = Callable[[], float]
FileStamp = tuple[int, int, int] | None


def build_alert(story: EnrichedStory, match: RuleMatch, snippet_chars: int) -> Alert:
    """The alert for one rule and story; its id depends on nothing else."""
    rule = match.rule
    return Alert(
        alert_id=alert_id_for(rule.id, story.id),
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        notify=list(rule.notify),
        story=story_summary(story),
        matches=matched_terms(match, story, snippet_chars),
        entities=[e.model_copy(update={"mentions": []}) for e in story.entities],
        topics=list(story.topics),
        first_seen=story.first_seen,
        raised_at=utcnow(),
    )


def story_summary(story: EnrichedStory) -> AlertStory:
    return AlertStory(
        id=story.id, url=story.url, title=story.title, source=story.feed, published=story.published
    )


def _file_stamp(path: Path) -> FileStamp:
    """What tells a changed file: editors that save by rename change the inode, not only mtime."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class RulesEngine:
    """Compiled rules + alert ledger. Not thread-safe: one caller (a runner loop) at a time."""

    def __init__(
        self,
        rules_path: Path,
        settings: RulesSettings,
        store: AlertStore,
        metrics: Metrics,
        *,
        rules: list[Rule] | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
    ) -> None:
        self.rules_path = rules_path
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self._stamp = _file_stamp(rules_path)
        self.compiled = compile_rules(
            rules if rules is not None else load_rules(rules_path), rules_path
        )
        self._checked_at = monotonic()
        self._reload_requested = False
        self.ledger = AlertLedger(store, settings, metrics, clock())
        self._declare(self.compiled)

    # -- rules -----------------------------------------------------------------------

    def request_reload(self) -> None:
        """Re-read the rules before the next story (safe to call from a signal handler)."""
        self._reload_requested = True

    def reload_if_due(self) -> bool:
        """Swap in the rules file if it changed or a reload was requested; True if swapped."""
        now = self.monotonic()
        due = now - self._checked_at >= self.settings.reload_check_seconds
        if not (self._reload_requested or due):
            return False
        self._checked_at = now
        requested, self._reload_requested = self._reload_requested, False
        stamp = _file_stamp(self.rules_path)
        if stamp == self._stamp and not requested:
            return False
        self._stamp = stamp
        return self._reload()

    def _reload(self) -> bool:
        """Swap in the rules file. No story is matched meanwhile, so the old automata are
        dropped first, and rebuilt from the old rules if the new file does not compile."""
        kept = self.compiled.rules
        self.compiled = CompiledRules(rules=[])
        try:
            compiled = compile_rules(load_rules(self.rules_path), self.rules_path)
        except ConfigError as exc:
            self.compiled = compile_rules(kept, self.rules_path)
            self.metrics.rule_reloads.labels("error").inc()
            log.error(
                "rules reload failed, keeping the previous rules rules_file=%s problems=%s",
                self.rules_path, "; ".join(exc.problems),
            )  # fmt: skip
            return False
        self.compiled = compiled
        self.metrics.rule_reloads.labels("ok").inc()
        self._declare(compiled)
        log.info("rules reloaded rules_file=%s rules=%s", self.rules_path, len(compiled.rules))
        return True

    def _declare(self, compiled: CompiledRules) -> None:
        self.metrics.rules_loaded.set(len(compiled.rules))
        self.metrics.declare_rules(
            ((r.id, r.severity) for r in compiled.rules), cap=self.settings.metric_rule_series
        )

    # -- stories ---------------------------------------------------------------------

    def process(self, story: EnrichedStory, position: SourcePosition | None = None) -> list[Alert]:
        """The alerts this story raises now (new ones, or pending ones again after a crash).

        The alerts are recorded `pending`; tell the engine when they are safely handed
        on (`confirm_before` in Kafka mode, `confirm_all` in the one-process mode).
        """
        self.reload_if_due()
        compiled = self.compiled
        started = time.perf_counter()
        matches = match_story(story, compiled)
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        self.metrics.stories_matched.labels("true" if matches else "false").inc()
        if not matches:
            return []
        now = self.clock()
        width = self.settings.snippet_chars
        with self.store.transaction():
            alerts = self.ledger.decide(
                story, matches, lambda m: build_alert(story, m, width), now, position
            )
        for alert in alerts:
            log.info(
                "alert raised",
                extra={"rule": alert.rule_id, "story_id": story.id, "alert_id": alert.alert_id},
            )
        return alerts

    def candidates(self, story: EnrichedStory) -> list[Alert]:
        """The alerts this story would raise, before dedup and throttling (Kafka: the match
        step, whose output is re-keyed by rule for one owner to decide)."""
        self.reload_if_due()
        started = time.perf_counter()
        matches = match_story(story, self.compiled)
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        self.metrics.stories_matched.labels("true" if matches else "false").inc()
        width = self.settings.snippet_chars
        return [build_alert(story, m, width) for m in matches]

    def decide_candidate(
        self, alert: Alert, minhash: MinHash, position: SourcePosition | None = None
    ) -> Alert | None:
        """Dedup, near-duplicates and throttling for one candidate (Kafka: the decide step,
        run by the owner of the rule's partition)."""
        with self.store.transaction():
            decided = self.ledger.decide_candidate(alert, minhash, self.clock(), position)
        if decided is not None:
            log.info(
                "alert raised",
                extra={"rule": decided.rule_id, "story_id": decided.story.id,
                       "alert_id": decided.alert_id},
            )  # fmt: skip
        return decided

    def restore(self, partitions: set[int]) -> int:
        """Partitions assigned: replay their state from the changelog, then index it."""
        replayed = self.store.restore(partitions)
        self.ledger.restored(self.clock())
        log.info(
            "rules state restored",
            extra={"stage": "rules", "partition": sorted(partitions), "records": replayed},
        )
        return replayed

    def refresh_stale(self) -> None:
        """Rebuild from the changelog the partitions whose last writes it refused, before
        deciding again there (`PartitionTables.refresh_stale`); `Retryable` meanwhile."""
        if self.store.tables.refresh_stale():
            self.ledger.restored(self.clock())

    def release(self, partitions: set[int]) -> None:
        """Partitions revoked: what they decided is in the changelog; the cache keeps their
        rows (to catch up from if they come back) but no longer acts on them."""
        self.store.release(partitions)
        self.ledger.restored(self.clock())

    def confirm_before(self, topic: str, partition: int, offset: int) -> None:
        """Records of this partition before `offset` were published (acknowledged or
        committed): their alerts went out."""
        self.store.confirm_before(topic, partition, offset)

    def confirm_all(self) -> None:
        self.store.confirm_all()

    # -- digests ---------------------------------------------------------------------

    def emit_due_digests(self, publish: Callable[[Sequence[Alert]], None]) -> int:
        """Hand each closed throttle window's digest to `publish`, then mark it sent.

        If `publish` raises, the held alerts stay held and go out on a later call; a
        crash after publishing sends the same digest (same id) again.
        """
        now = self.clock()
        groups = self.store.held_due(now, self.settings.throttle_window_seconds)
        for group in groups:
            digest = self._digest(group)
            publish([digest])
            self.store.mark_digested(group.rule_id, group.window_start)
            self.metrics.alerts.labels(digest.rule_id, digest.severity).inc()
            log.info(
                "digest raised rule=%s stories=%s alert_id=%s",
                digest.rule_id, len(digest.digest), digest.alert_id,
            )  # fmt: skip
        return len(groups)

    def _digest(self, group: HeldGroup) -> Alert:
        held = [decode(Alert, payload) for payload in group.payloads]
        first = held[0]
        rule = next((r for r in self.compiled.rules if r.id == group.rule_id), None)
        return first.model_copy(
            update={
                "alert_id": alert_id_for(group.rule_id, f"digest@{group.window_start!r}"),
                "kind": "digest",
                "rule_name": rule.name if rule else first.rule_name,
                "severity": rule.severity if rule else first.severity,
                "notify": list(rule.notify) if rule else first.notify,
                "matches": [],
                "entities": [],
                "topics": [],
                "digest": [a.story for a in held],
                "first_seen": min(a.first_seen for a in held),
                "raised_at": utcnow(),
            }
        )

    def close(self) -> None:
        self.store.close()


def open_engine(
    config: Config, metrics: Metrics, changelog: Changelog | None = None
) -> RulesEngine:
    """The engine of `newsmon rules` and `newsmon run`: its state in `<state_dir>/rules.sqlite3`
    (on Kafka a cache of the `changelog`)."""
    store = AlertStore(config.state_dir / STORE_FILE, changelog, metrics)
    return RulesEngine(config.rules_path, config.settings.rules, store, metrics, rules=config.rules)


def reload_on_sighup(engine: RulesEngine) -> None:
    """`kill -HUP <pid>` re-reads the rules file (main thread only; no-op where there is no HUP)."""
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda _signum, _frame: engine.request_reload())
