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


def signature_bytes(minhash: MinHash) -> bytes:
    return bytes(minhash.hashvalues.astype(np.uint32).tobytes())


def signature_from_bytes(raw: bytes) -> MinHash:
    """A signature sent with a candidate alert; `ValueError` if it is not one."""
    if len(raw) != NUM_PERM * 4:
        raise ValueError(f"a signature is {NUM_PERM * 4} bytes, not {len(raw)}")
    return _from_bytes(raw)


def _from_bytes(raw: bytes) -> MinHash:
    values = np.frombuffer(raw, dtype=np.uint32)
    return MinHash(num_perm=NUM_PERM, hashvalues=values, scheme=MINHASH_SCHEME)


class NearDuplicates:
    """Stories that alerted, indexed by MinHash LSH, each kept for a bounded window."""

    def __init__(self, store: AlertStore, threshold: float, window: float, now: float) -> None:
        self.store = store
        self.threshold = threshold
        self.window = window
        self._pruned_at = now
        self.reload(now)

    def reload(self, now: float) -> None:
        """Index what the store holds now (at start-up, and after partitions were restored
        or dropped)."""
        self._lsh = MinHashLSH(threshold=min(self.threshold, LSH_THRESHOLD_CAP), num_perm=NUM_PERM)
        self._kept: dict[str, tuple[float, MinHash]] = {}
        for story_id, seen_at, raw in self.store.signatures_since(now - self.window):
            if story_id not in self._kept:
                self._index(story_id, seen_at, _from_bytes(raw))

    def similar(self, story_id: str, minhash: MinHash) -> list[str]:
        """Ids of indexed stories whose estimated Jaccard similarity reaches the threshold."""
        found = []
        for other in self._lsh.query(minhash):
            if other != story_id and minhash.jaccard(self._kept[other][1]) >= self.threshold:
                found.append(other)
        return sorted(found)

    def add(self, story_id: str, minhash: MinHash, now: float, part: int = 0) -> None:
        """Remember an alerted story (inside the caller's transaction).

        Written even when already indexed in memory: a rolled-back transaction may have
        left the index ahead of the store.
        """
        self.store.put_signature(story_id, now, signature_bytes(minhash), part)
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


AlertBuilder = Callable[[RuleMatch], Alert]


class AlertLedger:
    """Dedup, near-duplicate suppression and throttling, all against one store.

    On Kafka it decides candidate alerts read from a topic keyed by rule
    (`decide_candidate`): every decision about a rule is taken by the one replica
    that owns its partition, however the stories were spread. `newsmon run` and
    `newsmon match` decide a story's matches at once (`decide`).
    """

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
        minhash = signature(story)
        out = []
        for match in matches:
            alert = self.decide_candidate(build(match), minhash, now, position)
            if alert is not None:
                out.append(alert)
        return out

    def decide_candidate(
        self, alert: Alert, minhash: MinHash, now: float, position: SourcePosition | None = None
    ) -> Alert | None:
        """The alert to publish for one rule and story, if any; inside `store.transaction()`."""
        part = position.partition if position is not None else 0
        out, raised = self._decide_one(alert, minhash, now, position, part)
        if raised:
            self.near.add(alert.story.id, minhash, now, part)
        self.near.prune(now)
        return out

    def decide_spike(
        self, alert: Alert, key: str, now: float, position: SourcePosition | None = None
    ) -> Alert | None:
        """The spike alert to publish, if any; inside `store.transaction()`.

        A spike is recorded under its `key` as a story is: the same spike again (its
        record read again after a crash) re-publishes the pending alert, and a rule over
        its throttle holds it for the digest. No near-duplicate check: a spike has no text.
        """
        known = self.store.get(alert.rule_id, key)
        if known is not None:
            return self._seen_before(known)
        part = position.partition if position is not None else 0
        window_start = self.store.admit(
            alert.rule_id, now, self.settings.throttle_max_alerts,
            self.settings.throttle_window_seconds, part,
        )  # fmt: skip
        if window_start is not None:
            self._suppress("throttled", alert.rule_id, key)
            self._record(
                alert.rule_id, key, "held", alert, now, position=position, window_start=window_start
            )
            return None
        self._record(alert.rule_id, key, "pending", alert, now, position=position)
        self.metrics.alerts.labels(alert.rule_id, alert.severity).inc()
        return alert

    def republish(self, rule_id: str, key: str) -> Alert | None:
        """A spike's alert again, if it is still pending (its story came back after a crash)."""
        known = self.store.get(rule_id, key)
        return None if known is None else self._seen_before(known)

    def restored(self, now: float) -> None:
        """The store's partitions changed (restored or dropped): index what it holds now."""
        self.near.reload(now)

    def _decide_one(
        self,
        alert: Alert,
        minhash: MinHash,
        now: float,
        position: SourcePosition | None,
        part: int,
    ) -> tuple[Alert | None, bool]:
        """(alert to publish or None, whether a new alert or held entry was recorded)."""
        rule_id, story_id = alert.rule_id, alert.story.id
        known = self.store.get(rule_id, story_id)
        if known is not None:
            return self._seen_before(known), False
        if self.store.fired_for_any(rule_id, self.near.similar(story_id, minhash)):
            self._suppress("near_duplicate", rule_id, story_id)
            self._record(rule_id, story_id, "duplicate", None, now, position=position)
            return None, False
        window_start = self.store.admit(
            rule_id, now, self.settings.throttle_max_alerts,
            self.settings.throttle_window_seconds, part,
        )  # fmt: skip
        if window_start is not None:
            self._suppress("throttled", rule_id, story_id)
            self._record(
                rule_id, story_id, "held", alert, now, position=position, window_start=window_start
            )
            return None, True
        self._record(rule_id, story_id, "pending", alert, now, position=position)
        self.metrics.alerts.labels(rule_id, alert.severity).inc()
        return alert, True

    def _seen_before(self, known: StoredAlert) -> Alert | None:
        """A pending alert may never have left: publish it again, byte for byte."""
        if known.state == "pending" and known.payload is not None:
            log.info(
                "re-publishing pending alert",
                extra={"rule": known.rule_id, "story_id": known.story_id,
                       "alert_id": known.alert_id},
            )  # fmt: skip
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

    def _suppress(self, reason: str, rule_id: str, story_id: str) -> None:
        self.metrics.alerts_suppressed.labels(reason).inc()
        log.debug(
            "alert suppressed", extra={"reason": reason, "rule": rule_id, "story_id": story_id}
        )
