"""The history: enriched stories and the alerts raised on them, searchable, kept for a while.

One SQLite file (`<state-dir>/history.sqlite3`) with two feeders: `newsmon run` writes it
as stories leave the rules stage (`pipeline/local.py`), and the console's Kafka feeder
fills its own copy from the enriched and alerts topics (`history/feeder.py`). The console
reads it; the backtest of a rule reads its stories.

Alerts are listed newest first in the order they reached the store (the row id: the
order they were raised, except while a feeder catches up on a backlog). Each filter
column has an index, and SQLite appends the row id to every index, so a filtered page
is an index scan in row order that stops after one page, whatever the row count. Free
text is an FTS5 index over headline and snippet, read in descending row order too, so a
common word stops after a page instead of collecting every match; with text, the rule,
severity and source filters are FTS terms as well (the `facets` column: one hex token
per value), so FTS5 intersects the lists itself instead of SQLite probing row by row.
Pages are keyed by row id, never by OFFSET, so page 500 costs what page 1 does.
Pruning deletes at most `batch` rows a call, so it never holds the write lock long.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import DecodeError
from pipeline.models import Alert, EnrichedStory, decode
from pipeline.storage import connect, immediate

FILENAME = "history.sqlite3"
PAGE_SIZE = 50
READ_CHUNK = 2000

SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (
    id TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    published REAL NOT NULL,
    stored_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS stories_by_time ON stories (stored_at);
CREATE INDEX IF NOT EXISTS stories_by_feed ON stories (feed, stored_at);
CREATE TABLE IF NOT EXISTS alerts (
    row INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    source TEXT NOT NULL,
    story_id TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    snippet TEXT NOT NULL,
    raised_at REAL NOT NULL,
    payload BLOB NOT NULL,
    facets TEXT GENERATED ALWAYS AS (
        'r' || hex(rule_id) || ' s' || hex(severity) || ' o' || hex(source)
    ) VIRTUAL
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (raised_at);
CREATE INDEX IF NOT EXISTS alerts_by_rule ON alerts (rule_id);
CREATE INDEX IF NOT EXISTS alerts_by_rule_severity ON alerts (rule_id, severity);
CREATE INDEX IF NOT EXISTS alerts_by_severity ON alerts (severity);
CREATE INDEX IF NOT EXISTS alerts_by_source ON alerts (source);
CREATE INDEX IF NOT EXISTS alerts_by_source_severity ON alerts (source, severity);
CREATE INDEX IF NOT EXISTS alerts_by_story ON alerts (story_id);
CREATE VIRTUAL TABLE IF NOT EXISTS alerts_text USING fts5 (
    title, snippet, facets, content='alerts', content_rowid='row', tokenize='unicode61'
);
CREATE TRIGGER IF NOT EXISTS alerts_text_insert AFTER INSERT ON alerts BEGIN
    INSERT INTO alerts_text (rowid, title, snippet, facets)
        VALUES (new.row, new.title, new.snippet, new.facets);
END;
CREATE TRIGGER IF NOT EXISTS alerts_text_delete AFTER DELETE ON alerts BEGIN
    INSERT INTO alerts_text (alerts_text, rowid, title, snippet, facets)
        VALUES ('delete', old.row, old.title, old.snippet, old.facets);
END;
"""


@dataclass(frozen=True)
class AlertFilter:
    """What the alerts page asks for; every field optional."""

    rule: str = ""
    severity: str = ""
    source: str = ""
    since: float | None = None
    until: float | None = None
    text: str = ""


@dataclass(frozen=True)
class Cursor:
    """Where the next (older) page starts: strictly before this row."""

    row: int

    def token(self) -> str:
        return str(self.row)

    @classmethod
    def parse(cls, token: str) -> Cursor | None:
        return cls(int(token)) if token.isdigit() else None


@dataclass(frozen=True)
class AlertRow:
    row: int
    alert_id: str
    kind: str
    rule_id: str
    rule_name: str
    severity: str
    source: str
    story_id: str
    title: str
    url: str
    snippet: str
    raised_at: float


@dataclass(frozen=True)
class AlertPage:
    rows: list[AlertRow]
    older: Cursor | None = None
    """Set when there may be older alerts than this page's last."""


@dataclass
class Pruned:
    stories: int = 0
    alerts: int = 0
    done: bool = field(default=True)
    """False when a batch limit stopped it: call again."""


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: every word must occur; `word*` matches any ending.

    Quoting each word keeps FTS5 syntax (NEAR, AND, column filters, stray quotes) out of
    a search box, so any input is a valid query. A prefix is only taken when asked for:
    FTS5 merges every term a prefix covers before it can read the newest match, which
    costs a common prefix a full pass over a million alerts.
    """
    found = re.findall(r"(\w+)(\*?)", text)
    return " ".join(f'"{word}"' + ("*" if star else "") for word, star in found)


def first_snippet(alert: Alert) -> str:
    if alert.matches:
        return alert.matches[0].snippet
    return "; ".join(s.title for s in alert.digest[:3])


class HistoryStore:
    """Thread-safe: one connection, one lock (SQLite serialises writers anyway)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = connect(path, SCHEMA)
        self._db.row_factory = sqlite3.Row

    @classmethod
    def in_dir(cls, state_dir: Path) -> HistoryStore:
        return cls(state_dir / FILENAME)

    # -- writing ------------------------------------------------------------------------

    def add(
        self, stories: Sequence[EnrichedStory], alerts: Sequence[Alert], now: float
    ) -> tuple[int, int]:
        """Store what is new (a story or alert read again is kept once); (stories, alerts) added."""
        story_rows = [
            (s.id, s.feed, s.title, s.url, s.published.timestamp(), now, s.to_bytes())
            for s in stories
        ]
        alert_rows = [alert_row(a) for a in alerts]
        with self._lock, immediate(self._db):
            added_stories = self._db.executemany(
                "INSERT OR IGNORE INTO stories VALUES (?, ?, ?, ?, ?, ?, ?)", story_rows
            ).rowcount
            added_alerts = self._insert_alerts(alert_rows)
        return max(added_stories, 0), max(added_alerts, 0)

    def add_alert_rows(self, rows: Iterable[tuple[object, ...]]) -> int:
        """Rows shaped by `alert_row`, in one transaction (bench/console_alerts.py fills a
        million this way without building a million `Alert` objects)."""
        with self._lock, immediate(self._db):
            return self._insert_alerts(rows)

    def _insert_alerts(self, rows: Iterable[tuple[object, ...]]) -> int:
        """Rows the statement wrote (not the FTS rows its trigger wrote)."""
        return self._db.executemany(
            "INSERT OR IGNORE INTO alerts (alert_id, kind, rule_id, rule_name, severity,"
            " source, story_id, title, url, snippet, raised_at, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        ).rowcount

    def prune(self, older_than: float, batch: int = 5000) -> Pruned:
        """Delete up to `batch` stories and `batch` alerts older than `older_than` (epoch s)."""
        with self._lock, immediate(self._db):
            stories = self._db.execute(
                "DELETE FROM stories WHERE id IN (SELECT id FROM stories"
                " WHERE stored_at < ? ORDER BY stored_at LIMIT ?)",
                (older_than, batch),
            ).rowcount
            alerts = self._db.execute(
                "DELETE FROM alerts WHERE row IN (SELECT row FROM alerts"
                " WHERE raised_at < ? ORDER BY raised_at LIMIT ?)",
                (older_than, batch),
            ).rowcount
        self.optimize()
        return Pruned(stories, alerts, done=stories < batch and alerts < batch)

    def optimize(self) -> None:
        """Refresh the planner's statistics when they are stale (cheap when they are not):
        with them SQLite picks the rule index for a rule filter, not the time index."""
        with self._lock:
            self._db.execute("PRAGMA optimize")

    # -- reading ------------------------------------------------------------------------

    def alerts(
        self, where: AlertFilter, before: Cursor | None = None, limit: int = PAGE_SIZE
    ) -> AlertPage:
        """One page of alerts matching `where`, newest first, strictly older than `before`."""
        query = fts_query(where.text)
        clauses, params = _filter_clauses(where, facets=not query)
        if before is not None:
            clauses.append("row < ?")
            params.append(before.row)
        columns = ", ".join(f"alerts.{c}" for c in _ROW_COLUMNS)
        source, order = "alerts", "alerts.row DESC"
        if query:  # the text index drives, newest first, and stops after a page
            source = "alerts_text JOIN alerts ON alerts.row = alerts_text.rowid"
            clauses.insert(0, "alerts_text MATCH ?")
            params.insert(0, _text_and_facets(query, where))
            order = "alerts_text.rowid DESC"
        sql = (
            f"SELECT {columns} FROM {source}"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f" ORDER BY {order} LIMIT ?"
        )
        with self._lock:
            found = self._db.execute(sql, [*params, limit + 1]).fetchall()
        rows = [AlertRow(*r) for r in found[:limit]]
        older = Cursor(rows[-1].row) if len(found) > limit else None
        return AlertPage(rows, older)

    def alert(self, alert_id: str) -> Alert | None:
        with self._lock:
            found = self._db.execute(
                "SELECT payload FROM alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return decode(Alert, found[0]) if found else None

    def alerts_for_story(self, story_id: str) -> list[Alert]:
        with self._lock:
            found = self._db.execute(
                "SELECT payload FROM alerts WHERE story_id = ? ORDER BY raised_at", (story_id,)
            ).fetchall()
        return [decode(Alert, r[0]) for r in found]

    def story(self, story_id: str) -> EnrichedStory | None:
        with self._lock:
            found = self._db.execute(
                "SELECT payload FROM stories WHERE id = ?", (story_id,)
            ).fetchone()
        return decode(EnrichedStory, found[0]) if found else None

    def stories(self, since: float | None = None, limit: int = 20_000) -> list[EnrichedStory]:
        """The newest stored stories (at most `limit`), newest first: what a rule test reads."""
        return [decode(EnrichedStory, p) for p in self.newest_story_payloads(limit, since)]

    def newest_story_payloads(self, limit: int, since: float | None = None) -> list[bytes]:
        """The newest stored stories' bytes (at most `limit`), newest first."""
        with self._lock:
            found = self._db.execute(
                "SELECT payload FROM stories WHERE stored_at >= ? ORDER BY stored_at DESC LIMIT ?",
                (since or 0.0, limit),
            ).fetchall()
        return [r[0] for r in found]

    def count_stories(self, since: float, until: float) -> int:
        """Stories stored in [since, until): the length of a backtest's read."""
        with self._lock:
            found = self._db.execute(
                "SELECT COUNT(*) FROM stories WHERE stored_at >= ? AND stored_at < ?",
                (since, until),
            ).fetchone()
        return int(found[0])

    def story_payloads(
        self, since: float, until: float, chunk: int = READ_CHUNK
    ) -> Iterator[tuple[float, bytes]]:
        """(stored_at, bytes) of the stories stored in [since, until), oldest first.

        Read a chunk at a time, keyed by (stored_at, rowid) along the time index, so a
        backtest over a million stories neither holds the lock between chunks (the writer
        of `newsmon run` goes on) nor pays OFFSET for the late chunks.
        """
        after: tuple[float, int] = (since, -1)
        while True:
            with self._lock:
                found = self._db.execute(
                    "SELECT stored_at, rowid, payload FROM stories"
                    " WHERE (stored_at, rowid) > (?, ?) AND stored_at < ?"
                    " ORDER BY stored_at, rowid LIMIT ?",
                    (*after, until, chunk),
                ).fetchall()
            for stored_at, _, payload in found:
                yield stored_at, payload
            if len(found) < chunk:
                return
            after = (found[-1][0], found[-1][1])

    def rule_activity(self, since: float, days: int) -> dict[str, tuple[float, list[int]]]:
        """Per rule that ever fired: (when it last fired, alerts per day for `days` days from
        `since`). Counted in SQL, so a million alerts cost one pass, not a million rows."""
        with self._lock:
            rules = self._distinct("rule_id")
            last = {
                rule: self._db.execute(
                    "SELECT raised_at FROM alerts WHERE row ="
                    " (SELECT MAX(row) FROM alerts WHERE rule_id = ?)",
                    (rule,),
                ).fetchone()[0]
                for rule in rules
            }
            per_day = self._db.execute(
                "SELECT rule_id, CAST((raised_at - ?) / 86400 AS INTEGER) AS day, COUNT(*)"
                " FROM alerts WHERE raised_at >= ? GROUP BY rule_id, day",
                (since, since),
            ).fetchall()
        activity = {rule: (stamp, [0] * days) for rule, stamp in last.items()}
        for rule, day, count in per_day:
            if rule in activity and 0 <= day < days:
                activity[rule][1][day] = count
        return activity

    def stories_per_feed(self, since: float) -> dict[str, int]:
        with self._lock:
            found = self._db.execute(
                "SELECT feed, COUNT(*) FROM stories WHERE stored_at >= ? GROUP BY feed", (since,)
            ).fetchall()
        return {feed: count for feed, count in found}

    def choices(self, column: str) -> list[str]:
        """The distinct rules or sources seen, for the filter menus."""
        if column not in ("rule_id", "source"):
            raise ValueError(column)
        with self._lock:
            return self._distinct(column)

    def _distinct(self, column: str, limit: int = 500) -> list[str]:
        """Distinct values by hopping along the column's index (one seek per value), not by
        reading a million index entries as SELECT DISTINCT would."""
        found = self._db.execute(
            f"WITH RECURSIVE hop(value) AS (SELECT MIN({column}) FROM alerts UNION ALL"
            f" SELECT (SELECT MIN({column}) FROM alerts WHERE {column} > hop.value)"
            f" FROM hop WHERE hop.value IS NOT NULL)"
            f" SELECT value FROM hop WHERE value IS NOT NULL LIMIT ?",
            (limit,),
        ).fetchall()
        return [r[0] for r in found]

    def counts(self) -> tuple[int, int]:
        with self._lock:
            stories = self._db.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
            alerts = self._db.execute("SELECT MAX(row) FROM alerts").fetchone()[0]
        return int(stories), int(alerts or 0)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def alert_row(alert: Alert) -> tuple[object, ...]:
    """The alerts table's columns for `alert`, in insert order."""
    story = alert.story
    return (
        alert.alert_id, alert.kind, alert.rule_id, alert.rule_name, alert.severity,
        story.source, story.id, story.title, story.url, first_snippet(alert),
        alert.raised_at.timestamp(), alert.to_bytes(),
    )  # fmt: skip


_ROW_COLUMNS = (
    "row", "alert_id", "kind", "rule_id", "rule_name", "severity", "source", "story_id",
    "title", "url", "snippet", "raised_at",
)  # fmt: skip


_FACETS = (("r", "rule"), ("s", "severity"), ("o", "source"))


def _text_and_facets(query: str, where: AlertFilter) -> str:
    """The words in headline or snippet, AND each chosen rule/severity/source as its token
    (the same `'r' || hex(rule_id)` the `facets` column holds, lower-cased by the tokenizer)."""
    parts = [f"{{title snippet}} : ({query})"]
    for prefix, name in _FACETS:
        value = getattr(where, name)
        if value:
            parts.append(f"facets : {prefix}{value.encode('utf-8').hex()}")
    return " AND ".join(parts)


def _filter_clauses(where: AlertFilter, *, facets: bool) -> tuple[list[str], list[object]]:
    """The column filters; rule, severity and source only if `facets` (with free text they
    are part of the FTS query instead)."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (
        ("rule_id", where.rule),
        ("severity", where.severity),
        ("source", where.source),
    ):
        if value and facets:
            clauses.append(f"alerts.{column} = ?")
            params.append(value)
    if where.since is not None:
        clauses.append("alerts.raised_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("alerts.raised_at < ?")
        params.append(where.until)
    return clauses, params


def split_records(
    records: Iterable[tuple[str, bytes]], enriched_topic: str, alerts_topic: str
) -> tuple[list[EnrichedStory], list[Alert], int]:
    """(stories, alerts, unreadable) from (topic, value) pairs: what both feeders hand in."""
    stories: list[EnrichedStory] = []
    alerts: list[Alert] = []
    unreadable = 0
    for topic, value in records:
        try:
            if topic == enriched_topic:
                stories.append(decode(EnrichedStory, value))
            elif topic == alerts_topic:
                alerts.append(decode(Alert, value))
        except DecodeError:  # counted; the stage that owns the record dead-letters it
            unreadable += 1
    return stories, alerts, unreadable
