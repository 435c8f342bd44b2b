"""One alert per rule and story, ever: reprocessing, edits, syndication, restarts, crashes, throttling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from datasketch import MinHash
from prometheus_client import CollectorRegistry
from rules_stories import rule, seed_story, story

from pipeline.config import Rule, RulesSettings
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, alert_id_for, story_id_for
from pipeline.rules.dedup import MINHASH_SCHEME, _from_bytes, signature
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import AlertStore, SourcePosition
from pipeline.rules.tokens import words

SEED_RULES = [
    rule("tesla", "Tesla", entity_types=["ORG"]),
    rule("qin-gang", "Qin Gang", entity_types=["PERSON"]),
    rule("unbundling", "unbundling"),
]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine_at(
    db: Path, rules: list[Rule] = SEED_RULES, clock: Clock | None = None, **settings: float
) -> RulesEngine:
    metrics = Metrics(CollectorRegistry())
    return RulesEngine(
        db.parent / "no-rules-file.yaml",
        RulesSettings(**settings),
        AlertStore(db),
        metrics,
        rules=rules,
        clock=clock or Clock(),
    )


def suppressed(engine: RulesEngine, reason: str) -> float:
    value = engine.metrics.registry.get_sample_value(
        "newsmon_alerts_suppressed_total", {"reason": reason}
    )
    return value or 0.0


def syndicated(original: EnrichedStory, url: str, feed: str) -> EnrichedStory:
    """The same wire copy under another URL and outlet, with its own credit line and tags."""
    return original.model_copy(
        update={
            "id": story_id_for(url),
            "url": url,
            "feed": feed,
            "title": original.title + " | Other Outlet",
            "text": original.text + "\n\n(Reporting by a wire service; editing by another desk.)",
        }
    )


def handed_on(engine: RulesEngine, subject: EnrichedStory) -> list[str]:
    """Process as the one-process mode does: alerts out, then confirmed."""
    alerts = engine.process(subject)
    engine.confirm_all()
    return [a.rule_id for a in alerts]


def test_same_story_again_raises_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "rules.sqlite3")
    assert handed_on(engine, seed_story()) == ["tesla", "qin-gang", "unbundling"]
    assert handed_on(engine, seed_story()) == []
    assert suppressed(engine, "same_story") == 3


def test_edited_story_keeps_its_alerts(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "rules.sqlite3")
    original = seed_story()
    handed_on(engine, original)
    edited = original.model_copy(update={"text": "Update: corrected a date.\n\n" + original.text})
    assert handed_on(engine, edited) == []


def test_syndicated_copy_under_another_url_is_suppressed(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "rules.sqlite3")
    original = seed_story()
    handed_on(engine, original)
    copy = syndicated(original, "https://other.example.org/world/musk-china", "other-outlet")
    assert handed_on(engine, copy) == []
    assert suppressed(engine, "near_duplicate") == 3


def test_a_different_story_on_the_same_subject_still_alerts(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "rules.sqlite3")
    handed_on(engine, seed_story())
    other = story(
        "Tesla cut prices of its Model Y in China again on Friday, the third cut this year, "
        "as competition with local makers of electric cars grows fiercer.",
        url="https://cars.example.net/tesla-price-cut",
        entities=[("ORG", "Tesla")],
    )
    assert handed_on(engine, other) == ["tesla"]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state" / "rules.sqlite3"
    first = engine_at(db)
    handed_on(first, seed_story())
    first.close()
    again = engine_at(db)
    assert handed_on(again, seed_story()) == []
    copy = syndicated(seed_story(), "https://other.example.org/x", "other-outlet")
    assert handed_on(again, copy) == []


def test_a_crash_before_the_commit_republishes_the_same_alerts(tmp_path: Path) -> None:
    """kill -9 after publishing, before committing: the record comes back, so must its alerts."""
    db = tmp_path / "rules.sqlite3"
    at = SourcePosition("newsmon.stories.enriched", 3, 41)
    crashed = engine_at(db)
    before = crashed.process(seed_story(), at)
    crashed.close()  # no confirm: the offset was never committed

    restarted = engine_at(db)
    after = restarted.process(seed_story(), at)
    assert [a.to_bytes() for a in after] == [a.to_bytes() for a in before]
    assert {a.alert_id for a in after} == {alert_id_for(r.id, seed_story().id) for r in SEED_RULES}
    restarted.confirm_before(at.topic, at.partition, at.offset + 1)
    assert restarted.process(seed_story(), SourcePosition(at.topic, 3, 57)) == []


def test_confirm_only_covers_earlier_offsets_of_the_same_partition(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "rules.sqlite3")
    at = SourcePosition("enriched", 0, 10)
    engine.process(seed_story(), at)
    engine.confirm_before("enriched", 1, 99)
    engine.confirm_before("enriched", 0, 10)
    assert engine.store.count("pending") == 3
    engine.confirm_before("enriched", 0, 11)
    assert (engine.store.count("pending"), engine.store.count("published")) == (0, 3)


def distinct_story(number: int) -> EnrichedStory:
    words = " ".join(f"word{number}x{i}" for i in range(40))
    return story(f"Tesla news number {number}: {words}", url=f"https://e.example/{number}")


def busy_rule_engine(tmp_path: Path, clock: Clock, *, max_alerts: int, window: int) -> RulesEngine:
    """One rule, "busy" (Tesla), throttled to `max_alerts` a `window` of seconds."""
    return engine_at(
        tmp_path / "rules.sqlite3",
        [rule("busy", "Tesla")],
        clock,
        throttle_max_alerts=max_alerts,
        throttle_window_seconds=window,
    )


def test_throttled_rule_sends_the_rest_as_one_digest(tmp_path: Path) -> None:
    clock = Clock()
    engine = busy_rule_engine(tmp_path, clock, max_alerts=2, window=60)
    raised = [handed_on(engine, distinct_story(n)) for n in range(5)]
    assert raised == [["busy"], ["busy"], [], [], []]
    assert suppressed(engine, "throttled") == 3

    sent: list[Alert] = []
    clock.now += 59
    assert engine.emit_due_digests(sent.extend) == 0
    clock.now += 2
    assert engine.emit_due_digests(sent.extend) == 1
    [digest] = sent
    assert digest.kind == "digest"
    assert [s.url for s in digest.digest] == [f"https://e.example/{n}" for n in (2, 3, 4)]
    assert engine.emit_due_digests(sent.extend) == 0
    assert handed_on(engine, distinct_story(3)) == []


def test_a_failed_digest_publish_is_retried_with_the_same_id(tmp_path: Path) -> None:
    clock = Clock()
    engine = busy_rule_engine(tmp_path, clock, max_alerts=1, window=10)
    for n in range(3):
        handed_on(engine, distinct_story(n))
    clock.now += 11
    attempts: list[str] = []

    def broker_down(alerts: Sequence[Alert]) -> None:
        attempts.extend(a.alert_id for a in alerts)
        raise Retryable("broker down")

    with pytest.raises(Retryable):
        engine.emit_due_digests(broker_down)
    assert engine.emit_due_digests(lambda alerts: attempts.extend(a.alert_id for a in alerts)) == 1
    assert len(attempts) == 2 and attempts[0] == attempts[1]


def test_a_new_window_after_the_digest_alerts_again(tmp_path: Path) -> None:
    clock = Clock()
    engine = busy_rule_engine(tmp_path, clock, max_alerts=1, window=10)
    assert [handed_on(engine, distinct_story(n)) for n in range(2)] == [["busy"], []]
    clock.now += 11
    assert handed_on(engine, distinct_story(7)) == ["busy"]
    assert engine.emit_due_digests(lambda _alerts: None) == 1


def test_alert_metrics_by_rule_and_severity(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "rules.sqlite3", [rule("tesla", "Tesla", severity="high")])
    handed_on(engine, story("Tesla again"))
    handed_on(engine, story("Nothing to see"))
    sample = engine.metrics.registry.get_sample_value
    assert sample("newsmon_alerts_total", {"rule": "tesla", "severity": "high"}) == 1
    assert sample("newsmon_stories_matched_total", {"matched": "true"}) == 1
    assert sample("newsmon_stories_matched_total", {"matched": "false"}) == 1
    assert sample("newsmon_rules_loaded") == 1


def test_signatures_are_datasketch_minhashes_of_the_word_3_grams() -> None:
    """Signatures are stored (the near-duplicate index is rebuilt from them at start-up):
    they must stay what plain datasketch computes, scheme `affine32`, 128 permutations."""
    original = seed_story()
    tokens = words(original.text)
    grams = {" ".join(tokens[i : i + 3]).encode() for i in range(len(tokens) - 2)}
    expected = MinHash(num_perm=128, scheme="affine32")
    expected.update_batch(sorted(grams))

    found = signature(original)

    assert MINHASH_SCHEME == "affine32"
    assert (found.hashvalues == expected.hashvalues).all()
    stored = _from_bytes(found.hashvalues.astype("uint32").tobytes())
    assert stored.jaccard(expected) == 1.0
