"""The rules worker (`rules_runner`, as `newsmon rules` builds it) in its own process, for kill tests.

`--hang-before-commit` makes it stop for good after the first chunk's alerts are
published and confirmed and before its offset is committed; `--hang-before-confirm`
after they are published and before they are confirmed. Either writes "published"
to `--log` first, so a test can kill -9 it in exactly that window.
`--exit-when-idle` stops it once nothing has arrived for a few seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from idle_exit import IdleExit

from pipeline.config import KafkaSettings, RulesSettings
from pipeline.corridor.kafka.transport import StageRunner
from pipeline.corridor.records import Message, Result
from pipeline.metrics import Metrics
from pipeline.rules.engine import STORE_FILE, RulesEngine
from pipeline.rules.stage import RulesStage
from pipeline.rules.store import AlertStore
from pipeline.rules.worker import rules_runner, run_worker
from pipeline.runtime import stop_event


class HangBeforeCommit(StageRunner):
    """Hangs once a chunk is published and confirmed, before its offsets are committed."""

    log_path: Path

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kafka.acknowledge = self._hang  # type: ignore[method-assign]

    def _hang(self, messages: Sequence[Message]) -> None:
        with self.log_path.open("a") as log:
            log.write("published\n")
        time.sleep(3600)


class WatchedStage(RulesStage):
    """Tells the idle timer that records are still arriving."""

    on_record: IdleExit | None = None
    hang_before_confirm: Path | None = None

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        if self.on_record is not None:
            self.on_record.reset()
        return super().handle_batch(messages)

    def published(self, messages: Sequence[Message]) -> None:
        if self.hang_before_confirm is not None:
            with self.hang_before_confirm.open("a") as log:
                log.write("published\n")
            time.sleep(3600)
        super().published(messages)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True, help="KafkaSettings as JSON")
    parser.add_argument("--rules", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--hang-before-commit", action="store_true")
    parser.add_argument("--hang-before-confirm", action="store_true")
    parser.add_argument("--exit-when-idle", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = KafkaSettings.model_validate(json.loads(args.settings))
    metrics = Metrics()
    stop = stop_event()
    store = AlertStore(args.state_dir / STORE_FILE)
    engine = RulesEngine(args.rules, RulesSettings(), store, metrics)
    stage = WatchedStage(engine, settings.topics.alerts)
    runner_class = HangBeforeCommit if args.hang_before_commit else StageRunner
    on_idle = IdleExit(stop) if args.exit_when_idle else None
    stage.on_record = on_idle
    stage.hang_before_confirm = args.log if args.hang_before_confirm else None
    runner = rules_runner(
        stage, settings, metrics, stop, on_idle=on_idle, runner_class=runner_class
    )
    if isinstance(runner, HangBeforeCommit):
        runner.log_path = args.log
    run_worker(runner, stage, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
