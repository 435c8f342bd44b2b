"""One alert per rule and story, ever; near-duplicates count as the same story.

The ledger decides, for each rule that fired on a story, whether an alert goes
out now, goes out again (the same alert, after a crash), waits for a digest
(its rule is over its throttle) or is suppressed: the rule already fired for
this story id (re-polled, reprocessed, edited) or for a story with
near-identical text (the same wire copy under another URL or outlet). Near
duplicates are found with MinHash over word 3-shingles and an LSH index of the
stories that alerted, rebuilt from the store at start-up and pruned after
`near_duplicate_window_seconds`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.config import RulesSettings
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, alert_id_for, decode
from pipeline.rules.match import RuleMatch
from pipeline.rules.store import AlertState, AlertStore, SourcePosition, StoredAlert
from pipeline.rules.tokens import words

log = logging.getLogger(__name__)

NUM_PERM = 128
SHINGLE_WORDS = 3
MINHASH_SCHEME = "affine32"
PRUNE_EVERY_SECONDS = 3600.0
# LSH only proposes candidates, each then checked against the real threshold; above this
# cap the banding would degenerate to a single band (datasketch refuses it).
LSH_THRESHOLD_CAP = 0.9


def shingles(story: EnrichedStory) -> set[bytes]:
    """Word 3-grams of the article text (title and summary when there is no text)."""
    tokens = words(story.text) or words(f"{story.title}\n{story.summary}")
    if len(tokens) < SHINGLE_WORDS:
        return {" ".join(tokens).encode()} if tokens else set()
    return {
        " ".join(tokens[i : i + SHINGLE_WORDS]).encode()
        for i in range(len(tokens) - SHINGLE_WORDS + 1)
    }


def signature(story: EnrichedStory) -> MinHash:
    minhash = MinHash(num_perm=NUM_PERM)
    minhash.update_batch(sorted(shingles(story)))
    return minhash


def _from_bytes(raw: bytes) -> MinHash:
    values = np.frombuffer(raw, dtype=np.uint32)
    return MinHash(num_perm=NUM_PERM, hashvalues=values, scheme=MINHASH_SCHEME)


class NearDuplicates:
    """Stories that alerted, indexed by MinHash LSH, each kept for a bounded window."""

    def __init__(self, store: AlertStore, threshold: float, window: float, now: float) -> None:
        self.store = store
        self.threshold = threshold
        self.window = window
        self._lsh = MinHashLSH(threshold=min(threshold, LSH_THRESHOLD_CAP), num_perm=NUM_PERM)
        self._kept: dict[str, tuple[float, MinHash]] = {}
        self._pruned_at = now
        for story_id, seen_at, raw in store.signatures_since(now - window):
            self._index(story_id, seen_at, _from_bytes(raw))

    def similar(self, story_id: str, minhash: MinHash) -> list[str]:
        """Ids of indexed stories whose estimated Jaccard similarity reaches the threshold."""
        found = []
        for other in self._lsh.query(minhash):
            if other != story_id and minhash.jaccard(self._kept[other][1]) >= self.threshold:
                found.append(other)
        return sorted(found)

    def add(self, story_id: str, minhash: MinHash, now: float) -> None:
        """Remember an alerted story (inside the caller's transaction).

        Written even when already indexed in memory: a rolled-back transaction may have
        left the index ahead of the store.
        """
        self.store.put_signature(story_id, now, minhash.hashvalues.astype(np.uint32).tobytes())
        if story_id not in self._kept:
            self._index(story_id, now, minhash)

    def prune(self, now: float) -> None:
        """Forget stories older than the window, at most once an hour."""
        if now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        cutoff = now - self.window
        for story_id in [s for s, (seen, _) in self._kept.items() if seen < cutoff]:
            self._lsh.remove(story_id)
            del self._kept[story_id]
        self.store.forget_signatures_before(cutoff)

    def _index(self, story_id: str, seen_at: float, minhash: MinHash) -> None:
        self._lsh.insert(story_id, minhash)
        self._kept[story_id] = (seen_at, minhash)


@dataclass
class _StoryCheck:
    """What the ledger learns about one story, computed at most once."""

    story: EnrichedStory
    minhash: MinHash | None = None
    near: list[str] | None = None


AlertBuilder = Callable[[RuleMatch], Alert]


class AlertLedger:
    """Dedup, near-duplicate suppression and throttling, all against one store."""

    def __init__(
        self, store: AlertStore, settings: RulesSettings, metrics: Metrics, now: float
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.near = NearDuplicates(
            store, settings.near_duplicate_threshold, settings.near_duplicate_window_seconds, now
        )

    def decide(
        self,
        story: EnrichedStory,
        matches: list[RuleMatch],
        build: AlertBuilder,
        now: float,
        position: SourcePosition | None = None,
    ) -> list[Alert]:
        """The alerts to publish for these matches; call inside `store.transaction()`."""
        check = _StoryCheck(story)
        out: list[Alert] = []
        raised = False
        for match in matches:
            alert, new = self._decide_one(check, match, build, now, position)
            raised = raised or new
            if alert is not None:
                out.append(alert)
        if raised:
            self.near.add(story.id, self._minhash(check), now)
        self.near.prune(now)
        return out

    def _decide_one(
        self,
        check: _StoryCheck,
        match: RuleMatch,
        build: AlertBuilder,
        now: float,
        position: SourcePosition | None,
    ) -> tuple[Alert | None, bool]:
        """(alert to publish or None, whether a new alert or held entry was recorded)."""
        rule, story = match.rule, check.story
        known = self.store.get(rule.id, story.id)
        if known is not None:
            return self._seen_before(known), False
        if self.store.fired_for_any(rule.id, self._near(check)):
            self._suppress("near_duplicate", rule.id, story.id)
            self._record(rule.id, story.id, "duplicate", None, now)
            return None, False
        alert = build(match)
        window_start = self.store.admit(
            rule.id, now, self.settings.throttle_max_alerts, self.settings.throttle_window_seconds
        )
        if window_start is not None:
            self._suppress("throttled", rule.id, story.id)
            self._record(rule.id, story.id, "held", alert, now, window_start=window_start)
            return None, True
        self._record(rule.id, story.id, "pending", alert, now, position=position)
        self.metrics.alerts.labels(rule.id, rule.severity).inc()
        return alert, True

    def _seen_before(self, known: StoredAlert) -> Alert | None:
        """A pending alert may never have left: publish it again, byte for byte."""
        if known.state == "pending" and known.payload is not None:
            log.info(
                "re-publishing pending alert rule=%s story_id=%s", known.rule_id, known.story_id
            )
            return decode(Alert, known.payload)
        if known.state not in ("held", "pending"):
            self._suppress("same_story", known.rule_id, known.story_id)
        return None

    def _record(
        self,
        rule_id: str,
        story_id: str,
        state: AlertState,
        alert: Alert | None,
        now: float,
        *,
        position: SourcePosition | None = None,
        window_start: float | None = None,
    ) -> None:
        payload = alert.to_bytes() if alert is not None else None
        stored = StoredAlert(rule_id, story_id, alert_id_for(rule_id, story_id), state, payload)
        self.store.put(stored, now, position, window_start)

    def _near(self, check: _StoryCheck) -> list[str]:
        if check.near is None:
            check.near = self.near.similar(check.story.id, self._minhash(check))
        return check.near

    @staticmethod
    def _minhash(check: _StoryCheck) -> MinHash:
        if check.minhash is None:
            check.minhash = signature(check.story)
        return check.minhash

    def _suppress(self, reason: str, rule_id: str, story_id: str) -> None:
        self.metrics.alerts_suppressed.labels(reason).inc()
        log.debug("alert suppressed reason=%s rule=%s story_id=%s", reason, rule_id, story_id)
