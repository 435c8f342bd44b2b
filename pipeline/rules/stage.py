"""The thin hosts around the engine.

`RulesStage` (`newsmon run`): EnrichedStory in, Alert out, matched and decided at
once. On Kafka the work is split so that every decision about a rule is taken by
one owner: `MatchStage` turns a story into candidate alerts keyed by rule id (the
story's MinHash signature in a header), and `DecideStage`, reading that topic,
owns each rule's partition and its state (`store.py`, restored on assignment).

Alerts are keyed by `alert_id`: a re-published alert (after a crash, see
`store.py`) lands in the same partition as its first copy, so the notifier
replica that owns that partition finds it in its delivery ledger and does not
send it again (`notifier/delivered.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pipeline.corridor.records import HEADER_PREFIX, Message, Output, Result
from pipeline.errors import PipelineError, Retryable, SchemaError
from pipeline.models import Alert, EnrichedStory, decode
from pipeline.rules.dedup import signature, signature_bytes, signature_from_bytes
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import SourcePosition

log = logging.getLogger(__name__)


H_SIGNATURE = HEADER_PREFIX + "story.minhash"


def alert_output(topic: str, alert: Alert) -> Output:
    return Output(topic, key=alert.alert_id, value=alert.to_bytes())


def candidate_output(topic: str, alert: Alert, minhash: bytes) -> Output:
    """Keyed by rule: one partition, hence one replica, decides everything about a rule."""
    return Output(
        topic, key=alert.rule_id, value=alert.to_bytes(), headers=((H_SIGNATURE, minhash),)
    )


class RulesStage:
    """A `Stage` for `StageRunner`; run it with `chunk_size=1` (see `handle_batch`)."""

    name = "rules"

    def __init__(self, engine: RulesEngine, alerts_topic: str) -> None:
        self.engine = engine
        self.alerts_topic = alerts_topic

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        """Confirm what is committed, then handle each story.

        Every record of a partition before the first one seen here was published,
        and with it the alerts it produced: this runner handled it earlier (each
        chunk is published before the next is handed over, and `published` confirms
        it then), or reading resumed at a commit point past it (this catches a kill
        between a publication and its confirmation). With chunks of one record that
        holds even when the runner re-handles a record after an error.
        """
        for (topic, partition), offset in _first_offsets(messages).items():
            self.engine.confirm_before(topic, partition, offset)
        return [self._handle(message) for message in messages]

    def published(self, messages: Sequence[Message]) -> None:
        """The alerts of `messages` (and of every earlier record of their partitions)
        were acknowledged by the broker: a re-read record must not send them again."""
        for (topic, partition), offset in _last_offsets(messages).items():
            self.engine.confirm_before(topic, partition, offset + 1)

    def _handle(self, message: Message) -> Result:
        try:
            story = decode(EnrichedStory, message.value)
            position = SourcePosition(message.topic, message.partition, message.offset)
            alerts = self.engine.process(story, position)
        except PipelineError as exc:
            return exc
        return [alert_output(self.alerts_topic, alert) for alert in alerts]


class MatchStage:
    """Kafka's first rules step: a story in, its candidate alerts out (no state)."""

    name = "rules-match"

    def __init__(self, engine: RulesEngine, candidates_topic: str) -> None:
        self.engine = engine
        self.candidates_topic = candidates_topic

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        return [self._handle(message) for message in messages]

    def _handle(self, message: Message) -> Result:
        try:
            story = decode(EnrichedStory, message.value)
        except PipelineError as exc:
            return exc
        alerts = self.engine.candidates(story)
        if not alerts:
            return []
        minhash = signature_bytes(signature(story))
        return [candidate_output(self.candidates_topic, a, minhash) for a in alerts]


class DecideStage(RulesStage):
    """Kafka's second rules step: candidates keyed by rule in, alerts out.

    Its decisions reach the changelog before its alerts are published: a replica that
    takes the partition over never knows less than what went out.
    """

    name = "rules"

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        try:  # a decision the changelog refused is made, and written, again: not re-published
            self.engine.refresh_stale()
        except Retryable as exc:
            return [exc for _ in messages]
        results = super().handle_batch(messages)
        try:
            self.engine.store.flush()
        except Retryable as exc:  # decided but not durable: decide again later
            return [exc for _ in messages]
        return results

    def _handle(self, message: Message) -> Result:
        try:
            alert = decode(Alert, message.value)
            minhash = signature_from_bytes(_header(message, H_SIGNATURE))
        except PipelineError as exc:
            return exc
        except ValueError as exc:
            return SchemaError(f"candidate alert: {exc}")
        position = SourcePosition(message.topic, message.partition, message.offset)
        try:
            decided = self.engine.decide_candidate(alert, minhash, position)
        except PipelineError as exc:
            return exc
        return [] if decided is None else [alert_output(self.alerts_topic, decided)]


def _header(message: Message, name: str) -> bytes:
    return next((v for k, v in message.headers if k == name), b"")


def _first_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    return _offsets(messages, min)


def _last_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    return _offsets(messages, max)


def _offsets(
    messages: Sequence[Message], pick: Callable[[int, int], int]
) -> dict[tuple[str, int], int]:
    found: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        found[key] = pick(found.get(key, m.offset), m.offset)
    return found
