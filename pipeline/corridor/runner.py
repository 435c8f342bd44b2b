"""The loop every stage runs on, whatever the transport: poll, keep chunks in flight,
settle each as it lands (publish, then acknowledge).

Chunks finish in any order. Each is published as soon as it is done, and only then
acknowledged, so a kill at any moment reads records again, never skips one (the
stages' own ledgers drop what was already done). Polled records wait in hand until
a chunk's place frees up. A plain `Stage` runs as one chunk at a time, handled as it
is submitted: each chunk is published before the next is handed over, which is what
the rules stage's ledger relies on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.corridor.records import (
    ChunkedStage,
    Message,
    Output,
    Partition,
    Position,
    Result,
    Stage,
    Transport,
)
from pipeline.corridor.settle import SettlePolicy, publish_until_stopped

log = logging.getLogger(__name__)

# How often finished chunks are published while others run. Each check is a consumer
# poll: at 0.05 s the polls cost two extractors and the broker 0.05 cores more than at
# 0.2 s (bench/pipeline_hold.py at 6 stories/s), for about 0.06 s of median latency.
FLIGHT_CHECK_SECONDS = 0.2


@dataclass
class _Flight:
    messages: list[Message]
    future: Future[Sequence[Result]]
    started: float
    released: set[Position] = field(default_factory=set)
    """Records whose partition moved away while the chunk ran: neither published nor
    acknowledged (the next owner reads them again)."""


class InHand:
    """A plain `Stage` as a `ChunkedStage`: one chunk at a time, handled when submitted."""

    in_flight_target = 1

    def __init__(self, stage: Stage, size: int) -> None:
        self.stage = stage
        self.name = stage.name
        self.size = size

    def chunk_size(self, backlog: int) -> int:
        return self.size

    def handle_batch(self, messages: Sequence[Message]) -> Sequence[Result]:
        return self.stage.handle_batch(messages)

    def submit(self, messages: Sequence[Message]) -> Future[Sequence[Result]]:
        done: Future[Sequence[Result]] = Future()
        try:
            done.set_result(self.stage.handle_batch(messages))
        except Exception as exc:  # settled like a chunk that failed in a pool
            done.set_exception(exc)
        return done


def as_chunked(stage: Stage | ChunkedStage, chunk_size: int) -> ChunkedStage:
    return stage if hasattr(stage, "submit") else InHand(stage, chunk_size)  # type: ignore[return-value]


@dataclass(frozen=True)
class Hooks:
    """What a host adds to the loop: a liveness beat each round (`on_round`), work for
    an idle moment (`on_idle`), and a stage's ledger told what was published
    (`on_published`: each chunk, after its outputs are published, before it is acknowledged)."""

    on_idle: Callable[[], None] | None = None
    on_round: Callable[[], None] | None = None
    on_published: Callable[[Sequence[Message]], None] | None = None


class Loop(Protocol):
    stop: threading.Event

    def run_once(self, timeout: float | None = None) -> int: ...

    def close(self) -> None: ...


def run_until_stopped(loop: Loop) -> None:
    """Rounds until `stop` is set, then close, however the rounds ended."""
    try:
        while not loop.stop.is_set():
            loop.run_once()
    finally:
        loop.close()


class Runner:
    """Moves records between a transport and one stage's transform, at least once."""

    def __init__(
        self,
        stage: Stage | ChunkedStage,
        transport: Transport,
        policy: SettlePolicy,
        *,
        poll_timeout: float = 1.0,
        chunk_size: int = 1,
        stuck_after: float = 600.0,
        hooks: Hooks | None = None,
        landed: threading.Event | None = None,
    ) -> None:
        self.stage, self.chunked = stage, as_chunked(stage, chunk_size)
        self.transport, self.policy = transport, policy
        self.metrics, self.stop = policy.metrics, policy.stop
        self.poll_timeout = poll_timeout
        self.stuck_after = stuck_after
        """A chunk running longer than this counts as hung: `on_round` is no longer
        called, so a liveness probe that watches the rounds sees it."""
        self.hooks = hooks or Hooks()
        self.landed = landed
        """Set whenever a chunk in flight finishes: a host that waits for several kinds of
        work on one event (`newsmon run`: records queued, chunks done) wakes for both."""
        self._waiting: list[Message] = []
        self._flights: list[_Flight] = []

    def run(self) -> None:
        """Until `stop` is set: poll, handle, publish, acknowledge; then close."""
        log.info("stage started", extra={"stage": self.stage.name, "topic": self.transport.name})
        run_until_stopped(self)

    def run_once(self, timeout: float | None = None) -> int:
        """Settle finished chunks, start waiting ones, poll if there is room; returns
        how many records were settled."""
        wait = self.poll_timeout if timeout is None else timeout
        if self.hooks.on_round is not None and not self._hung():
            self.hooks.on_round()
        settled = self._land()
        self._launch()
        if len(self._flights) < self.chunked.in_flight_target:
            self._poll(min(wait, FLIGHT_CHECK_SECONDS) if self._flights else wait)
        elif self._flights:
            futures.wait([f.future for f in self._flights], wait, futures.FIRST_COMPLETED)
        return settled + self._land()

    def in_hand(self) -> int:
        """Records polled and not yet settled."""
        return len(self._waiting) + sum(len(f.messages) for f in self._flights)

    def publish(self, outputs: Sequence[Output]) -> bool:
        """Publish outputs that no record carries (digests); False if stopped first."""
        return publish_until_stopped(
            self.transport.publish, outputs, self.stop,
            backoff_seconds=self.policy.backoff_seconds, stage=self.stage.name,
        )  # fmt: skip

    def release(self, partitions: set[Partition]) -> None:
        """Let go of what is held of `partitions` (they moved to another worker)."""
        for flight in self._flights:
            flight.released.update(
                m.position for m in flight.messages if (m.topic, m.partition) in partitions
            )
        kept = [m for m in self._waiting if (m.topic, m.partition) not in partitions]
        log.info(
            "partitions revoked",
            extra={"stage": self.stage.name, "partition": sorted(partitions),
                   "released": len(self._waiting) - len(kept)},
        )  # fmt: skip
        self._waiting = kept

    def _hung(self) -> bool:
        oldest = min((f.started for f in self._flights), default=None)
        return oldest is not None and time.monotonic() - oldest > self.stuck_after

    def _poll(self, wait: float) -> None:
        messages = self.transport.poll(wait)
        self._waiting.extend(messages)
        self._launch()
        if not messages and not self._flights:
            self.transport.flush()
            if self.hooks.on_idle is not None:
                self.hooks.on_idle()

    def _launch(self) -> None:
        while self._waiting and len(self._flights) < self.chunked.in_flight_target:
            size = self.chunked.chunk_size(len(self._waiting))
            chunk, self._waiting = self._waiting[:size], self._waiting[size:]
            self._flights.append(_Flight(chunk, self._submit(chunk), time.monotonic()))

    def _submit(self, chunk: list[Message]) -> Future[Sequence[Result]]:
        try:
            future = self.chunked.submit(chunk)
        except Exception as exc:  # settled like a chunk that failed in the pool
            future = Future()
            future.set_exception(exc)
        if self.landed is not None:
            landed = self.landed
            future.add_done_callback(lambda _: landed.set())
        return future

    def _land(self, *, drain: bool = False) -> int:
        """Settle every finished chunk (every chunk, waiting for them, if `drain`)."""
        if drain:
            futures.wait([f.future for f in self._flights])
        done = [f for f in self._flights if f.future.done()]
        for flight in done:
            self._flights.remove(flight)
            self._settle(flight)
        if drain:
            self.transport.flush()
        return sum(len(f.messages) for f in done)

    def _settle(self, flight: _Flight) -> None:
        results = self._results(flight)
        kept = [
            (message, result)
            for message, result in zip(flight.messages, results, strict=True)
            if message.position not in flight.released
        ]
        outputs = [
            out for message, result in kept for out in self.policy.outputs_for(message, result)
        ]
        if not self.publish(outputs):
            return  # stopped while the sink was down: read again by whoever reads next
        settled = [message for message, _ in kept]
        if self.hooks.on_published is not None and settled:
            self.hooks.on_published(settled)
        self.transport.acknowledge(settled)
        per_record = (time.monotonic() - flight.started) / len(flight.messages)
        for _ in flight.messages:
            self.metrics.handle_seconds.labels(self.stage.name).observe(per_record)

    def _results(self, flight: _Flight) -> list[Result]:
        try:
            results = list(flight.future.result())
        except futures.BrokenExecutor:
            # The pool is gone (a process was killed): retrying one by one would only
            # dead-letter every record. Stop the worker; its records are read again.
            raise
        except Exception:
            log.exception("chunk failed, handling one by one", extra={"stage": self.stage.name})
            return self.policy.handle_each(flight.messages)
        return self.policy.checked(flight.messages, results)

    def close(self) -> None:
        """Finish the chunks in flight (SIGTERM: what is in hand is done), make the
        acknowledgements durable, then close the transport."""
        try:
            self._land(drain=True)
        except futures.BrokenExecutor:
            log.error("chunks in flight lost with their pool", extra={"stage": self.stage.name})
        finally:
            self.transport.close()
        log.info("stage stopped", extra={"stage": self.stage.name})
