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
of 100,000 rules is never compiled twice in memory. A new rule equal to its old version
is that same object (`load_rules`'s `previous`), and once the new file loads and its terms
pass the check compiling makes, the old rules go before the new ones are compiled (but
for those the flood check reads), so a watch list is held twice only while it is read.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from datasketch import MinHash

from pipeline.config import Config, Rule, RulesSettings, load_rules
from pipeline.corridor.state import Changelog
from pipeline.errors import ConfigError
from pipeline.history.sources import History
from pipeline.metrics import Metrics
from pipeline.models import Alert, AlertStory, EnrichedStory, alert_id_for, decode, utcnow
from pipeline.rules.compile import CompiledRules, compile_rules, term_problems
from pipeline.rules.dedup import AlertLedger
from pipeline.rules.match import MatchNotes, RuleMatch, match_story, matched_terms
from pipeline.rules.spike import Fired, SpikeDetector
from pipeline.rules.store import AlertStore, HeldGroup, SourcePosition

log = logging.getLogger(__name__)

STORE_FILE = "rules.sqlite3"
Clock = Callable[[], float]
FileStamp = tuple[int, int, int, int] | None
OnReload = Callable[[Sequence[Rule], Sequence[Rule]], object]


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


def build_spike_alert(rule: Rule, candidate: Alert, fired: Fired, raised_at: datetime) -> Alert:
    """The alert of a spike: the story that set it off, its matches, and the counts with a
    few headlines of the window; its id names the rule and the spike, not a story."""
    return Alert(
        alert_id=alert_id_for(rule.id, fired.key),
        kind="spike",
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        notify=list(rule.notify),
        story=candidate.story,
        matches=candidate.matches,
        first_seen=candidate.first_seen,
        raised_at=raised_at,
        spike=fired.counts,
    )


def story_summary(story: EnrichedStory) -> AlertStory:
    return AlertStory(
        id=story.id, url=story.url, title=story.title, source=story.feed, published=story.published
    )


def file_stamp(path: Path) -> FileStamp:
    """What tells a changed rules file without reading it.

    The file the path names now, through any symlinks: an atomic replace (the console's
    save, editors that write a copy and rename it) and a Kubernetes ConfigMap update (a
    new directory, then the `..data` symlink swapped) bring a new inode, and the device
    tells inodes of two volumes apart; mtime and size catch an edit in place. Nothing
    holds the old file open, so a replaced file is never watched in its stead.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


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
        self._stamp = file_stamp(rules_path)
        self.compiled = compile_rules(
            rules if rules is not None else load_rules(rules_path), rules_path
        )
        self._checked_at = monotonic()
        self._reload_requested = False
        self.ledger = AlertLedger(store, settings, metrics, clock())
        self.spikes = SpikeDetector(store.spikes)
        self._spike_rules: dict[str, Rule] = {}
        self._declare(self.compiled)
        if not store.tables.mirrored:  # on Kafka the cache may hold partitions owned elsewhere
            self._forget_old_spikes()
        self.on_reload: OnReload | None = None
        """Told (old rules, new rules) after each reload that took effect: the host's flood
        check (`rules/flood.py`). The old rules are those the check reads
        (`previous_checked`): a watch list replaced whole is not kept for it."""

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
        stamp = file_stamp(self.rules_path)
        if stamp == self._stamp and not requested:
            return False
        self._stamp = stamp
        before = self._reload()
        if before is None:
            return False
        if self.on_reload is not None:
            self.on_reload(before, self.compiled.rules)
        return True

    def _reload(self) -> list[Rule] | None:
        """Swap in the rules file; the old rules the flood check reads (None: not swapped).

        No story is matched meanwhile, so the old automata are dropped first, and rebuilt
        from the old rules if the new file does not load or its terms do not compile. Once
        they do, the old rules go too, before the new ones are compiled, but for those the
        flood check reads (`previous_checked`; the rules the edit left as they were are
        the very objects of the new list), so a replaced watch list is never held twice
        while it is compiled."""
        kept = self.compiled.rules
        self.compiled = CompiledRules(rules=[])
        try:
            rules = load_rules(self.rules_path, kept)
            problems = term_problems(rules, self.rules_path)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            self.compiled = compile_rules(kept, self.rules_path)
            self.metrics.rule_reloads.labels("error").inc()
            log.error(
                "rules reload failed, keeping the previous rules",
                extra={"stage": "rules", "rules_file": str(self.rules_path),
                       "reason": "; ".join(exc.problems)},
            )  # fmt: skip
            return None
        before: list[Rule] = []
        if self.on_reload is not None:
            from pipeline.rules.flood import previous_checked  # (its imports: as open_engine)

            before = previous_checked(kept, [rule for rule in rules if rule.enabled])
        del kept
        compiled = compile_rules(rules, self.rules_path)  # its terms were checked above
        del rules
        self.compiled = compiled
        self.metrics.rule_reloads.labels("ok").inc()
        self._declare(compiled)
        self._forget_old_spikes()
        log.info(
            "rules reloaded",
            extra={"stage": "rules", "rules_file": str(self.rules_path),
                   "rules": len(compiled.rules)},
        )  # fmt: skip
        return before

    def _forget_old_spikes(self, parts: set[int] | None = None) -> None:
        """Rules that lost `spike:` (or left the file) drop their counts: after a reload
        (the cache holds only owned partitions), after a restore (those partitions), and
        at start-up in `newsmon run`. On Kafka the changelog gets the deletions with the
        next decision's flush."""
        with self.store.transaction():
            gone = self.store.spikes.forget_rules_except(set(self._spike_rules), parts)
        if gone:
            log.info("spike counts dropped", extra={"rule": gone, "reason": "not a spike rule"})

    def _declare(self, compiled: CompiledRules) -> None:
        self._spike_rules = {r.id: r for r in compiled.rules if r.spike is not None}
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
        matches = self._match(story)
        self.metrics.stories_matched.labels("true" if matches else "false").inc()
        if not matches:
            return []
        now = self.clock()
        width = self.settings.snippet_chars
        plain = [m for m in matches if m.rule.spike is None]
        counted = [m for m in matches if m.rule.spike is not None]
        with self.store.transaction():
            alerts = self.ledger.decide(
                story, plain, lambda m: build_alert(story, m, width), now, position
            ) if plain else []  # fmt: skip
            for match in counted:
                spike = self._count_spike(match.rule, build_alert(story, match, width), position)
                alerts += [spike] if spike is not None else []
        for alert in alerts:
            log.info(
                "alert raised",
                extra={"rule": alert.rule_id, "story_id": story.id, "alert_id": alert.alert_id},
            )
        return alerts

    def _match(self, story: EnrichedStory) -> list[RuleMatch]:
        started = time.perf_counter()
        notes = MatchNotes()
        policy = self.settings.unread_entities
        matches = match_story(story, self.compiled, unread_entities=policy, notes=notes)
        self.metrics.match_seconds.observe(time.perf_counter() - started)
        if notes.unread_entity_rules:
            self.metrics.entity_rules_unread.labels(policy).inc(notes.unread_entity_rules)
        return matches

    def candidates(self, story: EnrichedStory) -> list[Alert]:
        """The alerts this story would raise, before dedup and throttling (Kafka: the match
        step, whose output is re-keyed by rule for one owner to decide)."""
        self.reload_if_due()
        matches = self._match(story)
        self.metrics.stories_matched.labels("true" if matches else "false").inc()
        width = self.settings.snippet_chars
        return [build_alert(story, m, width) for m in matches]

    def decide_candidate(
        self, alert: Alert, minhash: MinHash, position: SourcePosition | None = None
    ) -> Alert | None:
        """Dedup, near-duplicates and throttling for one candidate (Kafka: the decide step,
        run by the owner of the rule's partition)."""
        spike_rule = self._spike_rules.get(alert.rule_id)
        with self.store.transaction():
            if spike_rule is not None:
                decided = self._count_spike(spike_rule, alert, position)
            else:
                decided = self.ledger.decide_candidate(alert, minhash, self.clock(), position)
        if decided is not None:
            log.info(
                "alert raised",
                extra={"rule": decided.rule_id, "story_id": decided.story.id,
                       "alert_id": decided.alert_id},
            )  # fmt: skip
        return decided

    def _count_spike(
        self, rule: Rule, candidate: Alert, position: SourcePosition | None
    ) -> Alert | None:
        """Count a story for a spike rule; the spike alert it sets off, if any (inside
        `store.transaction()`)."""
        if rule.spike is None:
            return None
        part = position.partition if position is not None else 0
        fired = self.spikes.count(rule.id, rule.spike, candidate.story, candidate.first_seen, part)
        if fired is None:
            return None
        if fired.counts is None:
            return self.ledger.republish(rule.id, fired.key)
        now = self.clock()
        alert = build_spike_alert(rule, candidate, fired, datetime.fromtimestamp(now, UTC))
        self.metrics.spikes_fired.labels(rule.severity).inc()
        log.info(
            "spike fired",
            extra={"rule": rule.id, "alert_id": alert.alert_id,
                   "window_count": fired.counts.window_count,
                   "baseline_mean": fired.counts.baseline_mean},
        )  # fmt: skip
        return self.ledger.decide_spike(alert, fired.key, now, position)

    def restore(self, partitions: set[int]) -> int:
        """Partitions assigned: replay their state from the changelog, then index it."""
        replayed = self.store.restore(partitions)
        self.ledger.restored(self.clock())
        self._forget_old_spikes(partitions)
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
                "spike": None,
                "first_seen": min(a.first_seen for a in held),
                "raised_at": utcnow(),
            }
        )

    def close(self) -> None:
        self.store.close()


def open_engine(
    config: Config,
    metrics: Metrics,
    changelog: Changelog | None = None,
    history: Callable[[float], History] | None = None,
) -> RulesEngine:
    """The engine of `newsmon rules` and `newsmon run`: its state in `<state_dir>/rules.sqlite3`
    (on Kafka a cache of the `changelog`); `history` opens what a reload's flood check reads
    (`rules/flood.py`)."""
    from pipeline.rules.flood import FloodCheck

    store = AlertStore(config.state_dir / STORE_FILE, changelog, metrics)
    settings = config.settings.rules
    engine = RulesEngine(config.rules_path, settings, store, metrics, rules=config.rules)
    if history is not None:
        engine.on_reload = FloodCheck(history, settings, metrics)
    return engine


def reload_on_sighup(engine: RulesEngine) -> None:
    """`kill -HUP <pid>` re-reads the rules file (main thread only; no-op where there is no HUP)."""
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda _signum, _frame: engine.request_reload())
