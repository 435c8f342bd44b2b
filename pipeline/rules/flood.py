"""Would a reloaded rule flood the chat? Its new version against its old one, over the
newest stories of the history.

On each rules reload that succeeds (both transports: `RulesEngine.on_reload`), the rules
that are new or changed are matched, old and new versions side by side, against the
newest `rules.flood_check_stories` stories of the history (not older than
`rules.history_days`: the history store in `newsmon run`, the enriched topic's tail on
Kafka). A rule whose new version matches at least `rules.flood_factor` times as many
stories as its old version did (a new rule: as if it had matched one) and at least
`rules.flood_min_alerts` is logged as a warning and counted in `newsmon_rule_floods_total`.
The reload itself goes ahead: the warning is there so that a typo (`terms: [a]`) is seen
before the chat fills up, not to second-guess the person who edited the file.

Why the old version over the same stories, and not the alerts the rule raised: both sides
are then counted the same way (pure matching, as `newsmon backtest` without the ledger),
on the same stories, on both transports; the alerts actually raised are capped by
throttling (so a flood would hide its own baseline) and, on Kafka, known only to the
replica that owns the rule's partition.

Cost and bound: only the changed rules are compiled (old and new versions in one matcher,
so each story is scanned once; at most `MAX_RULES` of them), and the rules stage waits for
the check, at most `rules.flood_check_seconds` (on Kafka plus one fetch of half a second,
or one offsets look-up's request timeout if the broker stops answering mid-check); past it
the stories read so far decide (`outcome="partial"`), as both versions were matched on
each of them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pipeline.config import Rule, RulesSettings
from pipeline.errors import PipelineError
from pipeline.history.sources import History
from pipeline.metrics import Metrics
from pipeline.models import EnrichedStory, decode
from pipeline.rules.compile import CompiledRules, compile_rules
from pipeline.rules.match import match_story

log = logging.getLogger(__name__)

DAY = 86400.0
MAX_RULES = 1000
"""Changed rules checked at most per reload: a typo is in a rule or two, and a whole new
watch list of 100,000 rules would not be compiled twice more on the stage's time."""
MIN_CONNECT_SECONDS = 0.5

OpenHistory = Callable[[float], History]
"""Opens the history, waiting at most that many seconds for it."""


@dataclass(frozen=True)
class Flood:
    rule_id: str
    would: int
    """Stories the new version matches among those read."""
    did: int
    """Stories the previous version matched among the same (0 for a new rule)."""
    stories: int
    new: bool


def changed_rules(before: Sequence[Rule], after: Sequence[Rule]) -> tuple[list[Rule], list[Rule]]:
    """(the new version of each rule that is new or changed, the old version of those of
    them that existed). A spike rule is left out: it raises one alert per spike, however
    many stories it matches, so matching more cannot flood the chat."""
    old = {rule.id: rule for rule in before}
    changed = [rule for rule in after if old.get(rule.id) != rule and rule.spike is None]
    return changed, [old[rule.id] for rule in changed if rule.id in old]


def previous_checked(before: Sequence[Rule], after: Sequence[Rule]) -> list[Rule]:
    """The rules of `before` that a check of this reload reads: the old versions of the
    changed rules it checks (the first `MAX_RULES`), and the rules the edit left as they
    were (mostly the very objects in `after`: free). A check given only these finds what it
    would find given all of `before`; a reload hands it only these, so a replaced watch
    list is not held twice past the swap while the check reads the history."""
    changed, _ = changed_rules(before, after)
    checked = {rule.id for rule in changed[:MAX_RULES]}
    now = {rule.id: rule for rule in after}
    return [
        rule
        for rule in before
        if rule.id in checked or ((new := now.get(rule.id)) is not None and new == rule)
    ]


def floods(
    counts: tuple[Counter[str], Counter[str]],
    changed: Iterable[Rule],
    existed: set[str],
    stories: int,
    settings: RulesSettings,
) -> list[Flood]:
    """The changed rules that match `flood_factor` times what they did (at least once),
    and at least `flood_min_alerts` stories; `counts` are (new versions, old versions)."""
    would, did = counts
    found = []
    for rule in changed:
        now, before = would[rule.id], did[rule.id]
        if now >= settings.flood_min_alerts and now >= settings.flood_factor * max(before, 1):
            found.append(Flood(rule.id, now, before, stories, rule.id not in existed))
    return found


@dataclass
class _Tally:
    stories: int = 0
    complete: bool = True


BEFORE = "\x00before:"
"""Marks a previous version's id in the one matcher both versions share (no rule id can
hold it: ids are letters, digits, `-`, `_` and `.`)."""


def side_by_side(changed: Sequence[Rule], previous: Sequence[Rule]) -> CompiledRules:
    """The new and the previous versions in one matcher, so a story is scanned once."""
    renamed = [rule.model_copy(update={"id": BEFORE + rule.id}) for rule in previous]
    return compile_rules([*changed, *renamed])


def _count(
    payloads: Iterable[bytes],
    compiled: CompiledRules,
    deadline: float,
    monotonic: Callable[[], float],
) -> tuple[tuple[Counter[str], Counter[str]], _Tally]:
    """Stories each version matches, (new, previous), story by story until the deadline."""
    now: Counter[str] = Counter()
    before: Counter[str] = Counter()
    tally = _Tally()
    for payload in payloads:
        if monotonic() > deadline:
            tally.complete = False
            break
        try:
            story = decode(EnrichedStory, payload)
        except PipelineError:
            continue
        tally.stories += 1
        for match in match_story(story, compiled):
            rule_id = match.rule.id
            if rule_id.startswith(BEFORE):
                before[rule_id[len(BEFORE) :]] += 1
            else:
                now[rule_id] += 1
    return (now, before), tally


class FloodCheck:
    """The check a reload runs (`RulesEngine.on_reload`); never raises."""

    def __init__(
        self,
        open_history: OpenHistory,
        settings: RulesSettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.open_history = open_history
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic

    def __call__(self, before: Sequence[Rule], after: Sequence[Rule]) -> list[Flood]:
        if self.settings.flood_check_stories == 0:
            return []
        changed, previous = changed_rules(before, after)
        if not changed:
            return []
        if len(changed) > MAX_RULES:
            log.info(
                "rules flood check: too many changed rules, checking the first ones",
                extra={"rules": len(changed), "checked": MAX_RULES},
            )
            changed = changed[:MAX_RULES]
            kept = {rule.id for rule in changed}
            previous = [rule for rule in previous if rule.id in kept]
        try:
            return self._check(changed, previous)
        except Exception as exc:  # a check that fails must never fail the reload
            self.metrics.rule_flood_checks.labels("error").inc()
            log.warning(
                "rules flood check failed", extra={"reason": getattr(exc, "reason", repr(exc))}
            )
            return []

    def _check(self, changed: list[Rule], previous: list[Rule]) -> list[Flood]:
        deadline = self.monotonic() + self.settings.flood_check_seconds
        compiled = side_by_side(changed, previous)
        since = self.clock() - self.settings.history_days * DAY
        history = self.open_history(max(deadline - self.monotonic(), MIN_CONNECT_SECONDS))
        try:
            read = history.newest(self.settings.flood_check_stories, since)
            counts, tally = _count(read.payloads, compiled, deadline, self.monotonic)
        finally:
            history.close()
        existed = {rule.id for rule in previous}
        found = floods(counts, changed, existed, tally.stories, self.settings)
        self._report(found, tally, history.where)
        return found

    def _report(self, found: list[Flood], tally: _Tally, where: str) -> None:
        for flood in found:
            kind = "new" if flood.new else "changed"
            self.metrics.rule_floods.labels(kind).inc()
            log.warning(
                "reloaded rule would raise far more alerts than before",
                extra={
                    "rule": flood.rule_id, "kind": kind, "alerts_now": flood.would,
                    "alerts_before": flood.did, "stories": flood.stories,
                    "factor": self.settings.flood_factor, "history": where,
                },
            )  # fmt: skip
        if found:
            outcome = "flood"
        elif tally.stories == 0:
            outcome = "no_history"
        else:
            outcome = "ok" if tally.complete else "partial"
        self.metrics.rule_flood_checks.labels(outcome).inc()
