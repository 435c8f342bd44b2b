"""Deliveries not yet settled, kept in a file so `newsmon run` loses none across restarts.

An append-only JSON-lines file: `{"op": "put", ...task...}` when a delivery is
queued or has failed an attempt, `{"op": "done", "key": ...}` when it was
delivered or dead-lettered. Each line is flushed to the operating system before
the call returns, which survives the process being killed (kill -9, OOM); it
does not fsync per line, so a power cut may lose the last lines. Opening the
journal replays it and rewrites it with only the pending deliveries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, TextIO

from pipeline.errors import PipelineError
from pipeline.models import Alert, decode
from pipeline.notifier.tasks import DeliveryTask

log = logging.getLogger(__name__)

COMPACT_MIN_LINES = 1000


class DeliveryJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._pending: dict[str, DeliveryTask] = {}
        self._lines = 0

    def open(self) -> list[DeliveryTask]:
        """Replay the journal; returns the deliveries that were still pending."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._pending = self._replay()
            self._compact()
            return list(self._pending.values())

    def put(self, task: DeliveryTask) -> None:
        with self._lock:
            self._pending[task.key] = task
            self._append({"op": "put", **task_to_json(task)})

    def done(self, key: str) -> None:
        with self._lock:
            if self._pending.pop(key, None) is not None:
                self._append({"op": "done", "key": key})

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._pending

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            raise PipelineError("delivery journal is not open", reason="journal")
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()
        self._lines += 1
        if self._lines > max(COMPACT_MIN_LINES, 4 * len(self._pending)):
            self._compact()

    def _replay(self) -> dict[str, DeliveryTask]:
        pending: dict[str, DeliveryTask] = {}
        if not self.path.exists():
            return pending
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                self._replay_line(line, number, pending)
        return pending

    def _replay_line(self, line: str, number: int, pending: dict[str, DeliveryTask]) -> None:
        try:
            entry = json.loads(line)
            if entry["op"] == "done":
                pending.pop(entry["key"], None)
            else:
                task = task_from_json(entry)
                pending[task.key] = task
        except (ValueError, KeyError, TypeError, PipelineError) as exc:
            # Only the last line can be torn (killed mid-write); anything else is logged too.
            log.warning(
                "skipping damaged journal line",
                extra={"path": str(self.path), "line": number, "error": str(exc)},
            )

    def _compact(self) -> None:
        """Rewrite the file with the pending deliveries only (atomically, by rename)."""
        if self._file is not None:
            self._file.close()
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            for task in self._pending.values():
                out.write(
                    json.dumps({"op": "put", **task_to_json(task)}, separators=(",", ":")) + "\n"
                )
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self._file = self.path.open("a", encoding="utf-8")
        self._lines = len(self._pending)


def task_to_json(task: DeliveryTask) -> dict[str, Any]:
    return {
        "key": task.key,
        "destination": task.destination,
        "attempts": task.attempts,
        "queued_at": task.queued_at,
        "not_before": task.not_before,
        "last_error": task.last_error,
        "alert": task.payload.decode("utf-8"),
    }


def task_from_json(entry: dict[str, Any]) -> DeliveryTask:
    payload = str(entry["alert"]).encode("utf-8")
    return DeliveryTask(
        alert=decode(Alert, payload),
        payload=payload,
        destination=str(entry["destination"]),
        queued_at=float(entry["queued_at"]),
        attempts=int(entry["attempts"]),
        not_before=float(entry["not_before"]),
        last_error=str(entry.get("last_error", "")),
    )
