"""The thin runner around the engine: EnrichedStory records in, Alert records out.

Alerts are keyed by `alert_id`: a re-published alert (after a crash, see
`store.py`) lands in the same partition as its first copy, so the notifier
replica that owns that partition finds it in its delivery ledger and does not
send it again (`notifier/delivered.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pipeline.corridor.records import Message, Output, Result
from pipeline.errors import PipelineError
from pipeline.models import Alert, EnrichedStory, decode
from pipeline.rules.engine import RulesEngine
from pipeline.rules.store import SourcePosition

log = logging.getLogger(__name__)


def alert_output(topic: str, alert: Alert) -> Output:
    return Output(topic, key=alert.alert_id, value=alert.to_bytes())


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
