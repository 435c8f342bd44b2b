"""Which part of the history a backtest reads: `--since 7d`, or `--from T --to T`. Pure.

T is an ISO 8601 date or time (`2026-11-24`, `2026-11-24T09:30`, `...Z`, `...+01:00`;
without an offset it is UTC) or a duration before now (`36h`: 36 hours ago). No flag at
all is the whole history kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.config import parse_duration
from pipeline.errors import PipelineError


class TimeRangeError(PipelineError):
    """The flags do not name a time range."""

    reason = "time_range"


@dataclass(frozen=True)
class TimeRange:
    """[since, until) in epoch seconds; None is the start (or the end) of the history."""

    since: float | None = None
    until: float | None = None

    def describe(self) -> str:
        if self.since is None and self.until is None:
            return "the whole history kept"
        start = _stamp(self.since) if self.since is not None else "the start of the history"
        end = _stamp(self.until) if self.until is not None else "now"
        return f"{start} to {end}"


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_instant(text: str, now: float, flag: str) -> float:
    """Epoch seconds of an ISO date/time (UTC unless it says otherwise) or of `<duration>`
    before `now`."""
    value = text.strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TimeRangeError(
            f"{flag} {text!r}: not a time (use e.g. 2026-11-24, 2026-11-24T09:30Z, or 36h for "
            "36 hours ago)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_time_range(
    since: str | None, start: str | None, end: str | None, now: float
) -> TimeRange:
    """The range the flags name; a `TimeRangeError` saying what is wrong otherwise."""
    if since is not None and (start is not None or end is not None):
        raise TimeRangeError("--since is a range of its own: use it, or --from/--to, not both")
    if since is not None:
        try:
            return TimeRange(now - parse_duration(since), None)
        except ValueError as exc:
            raise TimeRangeError(f"--since {since!r}: {exc}") from None
    begin = parse_instant(start, now, "--from") if start is not None else None
    finish = parse_instant(end, now, "--to") if end is not None else None
    if begin is not None and begin >= now:
        raise TimeRangeError(f"--from {start}: is in the future (now is {_stamp(now)})")
    if begin is not None and finish is not None and begin >= finish:
        raise TimeRangeError(f"--from {start} is not before --to {end}: the range is empty")
    return TimeRange(begin, finish)
