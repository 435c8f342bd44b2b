"""`newsmon rules`: the rules stage on Kafka, with digests and rule reloads between polls."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.errors import Retryable
from pipeline.metrics import Metrics
from pipeline.models import Alert
from pipeline.rules.engine import RulesEngine
from pipeline.rules.stage import RulesStage, alert_output

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
) -> StageRunner:
    """The runner of `newsmon rules`: one record a chunk, its alerts confirmed once the
    broker acknowledged them, commits at most every `commit_interval_seconds`."""
    return runner_class(
        stage, settings, [settings.topics.enriched], metrics, stop,
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


def send_digests(engine: RulesEngine, publish: Callable[[Sequence[Alert]], None]) -> int:
    """Digests that cannot be published now stay held and are tried again on the next call."""
    try:
        return engine.emit_due_digests(publish)
    except Retryable as exc:
        log.error("digest publish failed, will retry", extra={"reason": exc.reason})
        return 0
