"""The spike rules' counts: tables of the rules store, per partition, mirrored to its
changelog (`pipeline/corridor/state/`).

- `spike_counts`: stories a rule matched per time bucket (only buckets with stories);
- `spike_seen`: the stories counted, so that a story counts once per rule however
  often it comes back (a record read again after a crash, a re-polled story);
- `spike_state`: per rule, the newest story time seen, when it began counting,
  whether a spike is on (and which story set it off), and the newest stories of the
  window for the alert's headlines.

Buckets and ids older than a rule's baseline are pruned as its stories come, so a
rule holds at most its baseline's worth of buckets (12 per window) and of story ids.
Every row belongs to the partition its rule is keyed to, as the other rules tables do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.corridor.state import PartitionTables, Table
from pipeline.models import AlertStory

SCHEMA = """
CREATE TABLE IF NOT EXISTS spike_counts (
    part INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    stories INTEGER NOT NULL,
    PRIMARY KEY (rule_id, bucket)
);
CREATE TABLE IF NOT EXISTS spike_seen (
    part INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    story_id TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    PRIMARY KEY (rule_id, story_id)
);
CREATE INDEX IF NOT EXISTS spike_seen_bucket ON spike_seen (rule_id, bucket);
CREATE TABLE IF NOT EXISTS spike_state (
    part INTEGER NOT NULL,
    rule_id TEXT PRIMARY KEY,
    watermark REAL NOT NULL,
    started REAL,
    fired_at REAL,
    fired_key TEXT,
    fired_story TEXT,
    pruned_before REAL,
    recent TEXT NOT NULL
);
"""

SPIKE_COUNTS = Table("spike_counts", key=("rule_id", "bucket"), values=("stories",))
SPIKE_SEEN = Table("spike_seen", key=("rule_id", "story_id"), values=("bucket",))
SPIKE_STATE = Table(
    "spike_state", key=("rule_id",),
    values=("watermark", "started", "fired_at", "fired_key", "fired_story", "pruned_before",
            "recent"),
)  # fmt: skip
TABLES = (SPIKE_COUNTS, SPIKE_SEEN, SPIKE_STATE)

Recent = tuple[tuple[float, AlertStory], ...]


@dataclass(frozen=True)
class SpikeState:
    """A rule's spike bookkeeping (times in epoch seconds of story time)."""

    watermark: float = float("-inf")
    started: float | None = None
    fired_at: float | None = None
    fired_key: str | None = None
    fired_story: str | None = None
    pruned_before: float = float("-inf")
    recent: Recent = ()


class SpikeStore:
    """Reads and writes of the spike tables; writes inside the rules store's transaction."""

    def __init__(self, tables: PartitionTables) -> None:
        self.tables = tables

    def state(self, rule_id: str) -> SpikeState | None:
        rows = self.tables.rows("spike_state", "rule_id = ?", (rule_id,))
        if not rows:
            return None
        row = rows[0]
        return SpikeState(
            watermark=row["watermark"], started=row["started"], fired_at=row["fired_at"],
            fired_key=row["fired_key"], fired_story=row["fired_story"],
            pruned_before=_or_never(row["pruned_before"]), recent=_decode_recent(row["recent"]),
        )  # fmt: skip

    def put_state(self, rule_id: str, state: SpikeState, part: int) -> None:
        row = {
            "rule_id": rule_id, "watermark": state.watermark, "started": state.started,
            "fired_at": state.fired_at, "fired_key": state.fired_key,
            "fired_story": state.fired_story, "pruned_before": _finite(state.pruned_before),
            "recent": _encode_recent(state.recent),
        }  # fmt: skip
        self.tables.upsert("spike_state", part, row)

    def seen(self, rule_id: str, story_id: str) -> bool:
        with self.tables.lock:
            row = self.tables.db.execute(
                "SELECT 1 FROM spike_seen WHERE rule_id = ? AND story_id = ?", (rule_id, story_id)
            ).fetchone()
        return row is not None

    def add(self, rule_id: str, bucket: int, story_id: str, part: int) -> None:
        """Count a story in its bucket and remember it."""
        with self.tables.lock:
            row = self.tables.db.execute(
                "SELECT stories FROM spike_counts WHERE rule_id = ? AND bucket = ?",
                (rule_id, bucket),
            ).fetchone()
        stories = (int(row[0]) if row else 0) + 1
        self.tables.upsert(
            "spike_counts", part, {"rule_id": rule_id, "bucket": bucket, "stories": stories}
        )
        self.tables.upsert(
            "spike_seen", part, {"rule_id": rule_id, "story_id": story_id, "bucket": bucket}
        )

    def total(self, rule_id: str, start: float, end: float | None) -> int:
        """Stories counted in buckets from `start` up to (not including) `end`."""
        sql = "SELECT COALESCE(SUM(stories), 0) FROM spike_counts WHERE rule_id = ? AND bucket >= ?"
        params: tuple[Any, ...] = (rule_id, start)
        if end is not None:
            sql += " AND bucket < ?"
            params += (end,)
        with self.tables.lock:
            found: int = self.tables.db.execute(sql, params).fetchone()[0]
        return found

    def prune(self, rule_id: str, before: float, part: int) -> int:
        """Forget buckets and story ids older than `before`."""
        dropped = 0
        for table in ("spike_counts", "spike_seen"):
            for row in self.tables.rows(table, "rule_id = ? AND bucket < ?", (rule_id, before)):
                self.tables.delete(table, row["part"], row)
                dropped += 1
        return dropped

    def forget_rules_except(self, keep: set[str], parts: set[int] | None = None) -> list[str]:
        """Drop the counts of rules that are no longer spike rules (removed from the file,
        disabled, or without `spike:` now), in `parts` (default: all the cache holds);
        returns their ids. Inside a transaction."""
        with self.tables.lock:
            held = self.tables.db.execute("SELECT rule_id, part FROM spike_state").fetchall()
        gone = sorted({r for r, part in held if r not in keep and (parts is None or part in parts)})
        for rule_id in gone:
            for table in ("spike_counts", "spike_seen", "spike_state"):
                for row in self.tables.rows(table, "rule_id = ?", (rule_id,)):
                    self.tables.delete(table, row["part"], row)
        return gone

    def rows(self, rule_id: str) -> int:
        """Rows a rule holds (buckets and ids): what the pruning keeps bounded."""
        with self.tables.lock:
            found: int = self.tables.db.execute(
                "SELECT (SELECT COUNT(*) FROM spike_counts WHERE rule_id = ?)"
                " + (SELECT COUNT(*) FROM spike_seen WHERE rule_id = ?)",
                (rule_id, rule_id),
            ).fetchone()[0]
        return found


def _finite(value: float) -> float | None:
    return value if value != float("-inf") else None


def _or_never(value: float | None) -> float:
    return float("-inf") if value is None else float(value)


def _encode_recent(recent: Recent) -> str:
    return json.dumps([[at, story.model_dump(mode="json")] for at, story in recent])


def _decode_recent(raw: str) -> Recent:
    return tuple((float(at), AlertStory.model_validate(story)) for at, story in json.loads(raw))
