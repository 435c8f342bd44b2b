"""`newsmon rules`: the rules stage on Kafka, with digests and rule reloads between polls.

Two steps in one process, one thread: the match step reads enriched stories and
publishes candidate alerts keyed by rule id; the decide step reads those and owns
each rule's partition, restoring its state from the `rules.state` changelog when
the partition is assigned (`RulesWorker`). Any number of replicas can run: a
near-duplicate or a throttle window is judged by the one owner of its rule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Partition
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.rules.engine import RulesEngine
from pipeline.rules.stage import DecideStage, MatchStage, RulesStage, alert_output

log = logging.getLogger(__name__)


def rules_runner(
    stage: RulesStage,
    settings: KafkaSettings,
    metrics: Metrics,
    stop: threading.Event,
    *,
    group_id: str | None = None,
    on_idle: Callable[[], None] | None = None,
    on_round: Callable[[], None] | None = None,
    runner_class: type[StageRunner] = StageRunner,
    topic: str | None = None,
) -> StageRunner:
    """The runner of `newsmon rules`: one record a chunk, its alerts confirmed once the
    broker acknowledged them, commits at most every `commit_interval_seconds`."""
    return runner_class(
        stage, settings, [topic or settings.topics.enriched], metrics, stop,
        group_id=group_id, chunk_size=1, commit_every=settings.commit_interval_seconds,
        on_idle=on_idle, on_round=on_round, on_published=stage.published,
    )  # fmt: skip


def run_worker(runner: StageRunner, stage: RulesStage, stop: threading.Event) -> None:
    """Poll and handle until stopped; between polls, send the digests whose window closed
    and pick up a changed rules file.

    Digests go out here rather than as the output of some record so that they
    are sent even when no further story arrives; likewise a SIGHUP takes effect
    (and is logged) on an idle stream, not only when the next story comes.
    """

    def publish(alerts: Sequence[Alert]) -> None:
        runner.producer.publish([alert_output(stage.alerts_topic, a) for a in alerts])

    try:
        while not stop.is_set():
            runner.run_once()
            send_digests(stage.engine, publish)
            stage.engine.reload_if_due()
    finally:
        runner.close()
        stage.engine.close()


STEP_POLL_SECONDS = 0.2  # each step's poll while the other waits its turn


class RulesWorker:
    """The match step and the decide step of `newsmon rules`, taking turns on one thread
    (the engine is not thread-safe)."""

    def __init__(
        self,
        engine: RulesEngine,
        settings: KafkaSettings,
        metrics: Metrics,
        stop: threading.Event,
        *,
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.stop = stop
        topics = settings.topics
        self.match_stage = MatchStage(engine, topics.alert_candidates)
        self.decide_stage = DecideStage(engine, topics.alerts)
        self.match = StageRunner(
            self.match_stage, settings, [topics.enriched], metrics, stop,
            chunk_size=settings.max_poll_records, commit_every=settings.commit_interval_seconds,
            on_round=on_round,
        )  # fmt: skip
        self.decide = rules_runner(
            self.decide_stage, settings, metrics, stop, topic=topics.alert_candidates
        )
        # Until partitions are assigned nothing is owned: a cache left by an earlier run
        # must not send digests for rules another replica owns now (its rows stay, to
        # catch up from if their partitions are assigned here).
        engine.release(engine.store.tables.partitions())
        self.decide.kafka.on_assigned = self._assigned
        self.decide.kafka.on_revoked = self._revoked

    def _assigned(self, partitions: set[Partition]) -> None:
        self.engine.restore({p for _, p in partitions})

    def _revoked(self, partitions: set[Partition]) -> None:
        self.decide.release(partitions)
        self.engine.release({p for _, p in partitions})

    def run(self) -> None:
        def publish(alerts: Sequence[Alert]) -> None:
            topic = self.decide_stage.alerts_topic
            self.decide.producer.publish([alert_output(topic, a) for a in alerts])

        try:
            while not self.stop.is_set():
                self.match.run_once(STEP_POLL_SECONDS)
                self.decide.run_once(STEP_POLL_SECONDS)
                if send_digests(self.engine, publish):
                    self.engine.store.flush()  # digested marks
                self.engine.reload_if_due()
        finally:
            try:
                self.match.close()
            finally:
                self.decide.close()
                self.engine.close()


def send_digests(engine: RulesEngine, publish: Callable[[Sequence[Alert]], None]) -> int:
    """Digests that cannot be published now stay held and are tried again on the next call."""
    try:
        return engine.emit_due_digests(publish)
    except Retryable as exc:
        log.error("digest publish failed, will retry", extra={"reason": exc.reason})
        return 0
