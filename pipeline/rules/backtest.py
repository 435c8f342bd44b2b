"""What rules would have raised over the history, and what an edit changes. Pure.

The alerts come from the rules engine exactly as `newsmon match` runs it
(`tester_engine`): each story at most once per rule, near-duplicates counted once, no
throttling. With a second rule file to compare against, each story goes through both
engines and the difference is taken story by story: an alert's id is a function of the
rule and the story, so "added" and "removed" are exact, and nothing but the per-rule
tallies and a few samples is held, however long the history.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from pipeline.config import Rule, RulesSettings
from pipeline.errors import DecodeError
from pipeline.metrics import Metrics
from pipeline.models import Alert, EnrichedStory, decode

if TYPE_CHECKING:  # the engine pulls in datasketch (and scipy)
    from pipeline.rules.engine import RulesEngine

SAMPLES = 3
UNTHROTTLED = 10**9
NEVER = 10.0**12
"""Seconds between checks of the rules file: a tester's rules never change under it."""

RaiseAlerts = Callable[[EnrichedStory], list[Alert]]
ChangeKind = Literal["added", "removed"]


def tester_engine(path: Path, rules: list[Rule], settings: RulesSettings) -> RulesEngine:
    """The engine `newsmon match` and `newsmon backtest` run: in memory, never throttled,
    never reloading (the file may be edited while a long backtest runs)."""
    from pipeline.rules.engine import RulesEngine
    from pipeline.rules.store import MEMORY, AlertStore

    tester = settings.model_copy(
        update={"throttle_max_alerts": UNTHROTTLED, "reload_check_seconds": NEVER}
    )
    return RulesEngine(path, tester, AlertStore(MEMORY), Metrics(), rules=rules)


def raiser(engine: RulesEngine) -> RaiseAlerts:
    """The alerts a story raises, confirmed at once (nothing is published)."""

    def raise_alerts(story: EnrichedStory) -> list[Alert]:
        alerts = engine.process(story)
        if alerts:
            engine.confirm_all()
        return alerts

    return raise_alerts


@dataclass(frozen=True)
class Sample:
    """A story an alert was raised on, as a person scans it."""

    title: str
    source: str
    published: datetime
    snippet: str

    @classmethod
    def of(cls, alert: Alert) -> Sample:
        first = alert.matches[0] if alert.matches else None
        where = f"{first.field}: {first.snippet}" if first else ""
        story = alert.story
        return cls(story.title, story.source, story.published, where)


def _samples() -> deque[Sample]:
    return deque(maxlen=SAMPLES)


@dataclass
class RuleOutcome:
    """One rule over the history: its alerts, the newest few, and against the compared
    file, the alerts it gains and loses."""

    rule_id: str
    name: str
    tested: bool = True
    """In the tested file (False: only in the compared one, so every alert is removed)."""
    compared: bool = False
    """In the compared file."""
    alerts: int = 0
    before: int = 0
    added: int = 0
    removed: int = 0
    samples: deque[Sample] = field(default_factory=_samples)
    added_samples: deque[Sample] = field(default_factory=_samples)
    removed_samples: deque[Sample] = field(default_factory=_samples)


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    alert: Alert


def diff_alerts(tested: Sequence[Alert], compared: Sequence[Alert]) -> list[Change]:
    """The alerts one story raises under the tested rules and not the compared ones
    (added), and the other way round (removed); same rule, same story, same alert."""
    before = {a.alert_id for a in compared}
    after = {a.alert_id for a in tested}
    changes = [Change("added", a) for a in tested if a.alert_id not in before]
    changes += [Change("removed", a) for a in compared if a.alert_id not in after]
    return changes


class Backtest:
    """Tallies per rule, story by story, oldest first."""

    def __init__(
        self,
        tested: RaiseAlerts,
        tested_rules: Sequence[Rule],
        compared: RaiseAlerts | None = None,
        compared_rules: Sequence[Rule] = (),
    ) -> None:
        self.tested = tested
        self.compared = compared
        self.stories = 0
        self.unreadable = 0
        self.outcomes: dict[str, RuleOutcome] = {
            r.id: RuleOutcome(r.id, r.name) for r in tested_rules
        }
        for rule in compared_rules:
            outcome = self.outcomes.setdefault(rule.id, RuleOutcome(rule.id, rule.name, False))
            outcome.compared = True

    def add_payload(self, payload: bytes) -> tuple[list[Alert], list[Change]]:
        """A story's wire bytes; one that does not decode is counted and skipped."""
        try:
            story = decode(EnrichedStory, payload)
        except DecodeError:
            self.unreadable += 1
            return [], []
        return self.add(story)

    def add(self, story: EnrichedStory) -> tuple[list[Alert], list[Change]]:
        """(the alerts the tested rules raise on `story`, what changed against the compared)."""
        self.stories += 1
        alerts = self.tested(story)
        for alert in alerts:
            outcome = self._outcome(alert)
            outcome.alerts += 1
            outcome.samples.append(Sample.of(alert))
        if self.compared is None:
            return alerts, []
        before = self.compared(story)
        for alert in before:
            self._outcome(alert).before += 1
        changes = diff_alerts(alerts, before)
        for change in changes:
            outcome = self._outcome(change.alert)
            if change.kind == "added":
                outcome.added += 1
                outcome.added_samples.append(Sample.of(change.alert))
            else:
                outcome.removed += 1
                outcome.removed_samples.append(Sample.of(change.alert))
        return alerts, changes

    def _outcome(self, alert: Alert) -> RuleOutcome:
        found = self.outcomes.get(alert.rule_id)
        if found is None:  # not declared (cannot happen with the engines' own rules)
            found = self.outcomes[alert.rule_id] = RuleOutcome(alert.rule_id, alert.rule_name)
        return found


# -- the report ----------------------------------------------------------------------------


def write_report(backtest: Backtest, heading: str, out: TextIO) -> None:
    """Per rule: alerts, and against the compared file before / added / removed; then the
    newest few headlines with the snippet that made each fire."""
    compared = backtest.compared is not None
    out.write(heading + "\n\n")
    outcomes = sorted(backtest.outcomes.values(), key=lambda o: (-o.alerts, -o.before, o.rule_id))
    width = max([len("rule"), *(len(o.rule_id) for o in outcomes)])
    header = f"{'rule':<{width}}  {'alerts':>7}"
    if compared:
        header += f"  {'before':>7}  {'added':>7}  {'removed':>7}"
    out.write(header + "\n")
    for outcome in outcomes:
        out.write(_row(outcome, width, compared) + "\n")
    for outcome in outcomes:
        _write_samples(outcome, compared, out)
    out.flush()


def _row(outcome: RuleOutcome, width: int, compared: bool) -> str:
    row = f"{outcome.rule_id:<{width}}  {outcome.alerts if outcome.tested else '-':>7}"
    if compared:
        before = outcome.before if outcome.compared else "-"
        row += f"  {before:>7}  {f'+{outcome.added}':>7}  {f'-{outcome.removed}':>7}"
        if not outcome.compared:
            row += "  (new rule)"
        elif not outcome.tested:
            row += "  (not in the tested file)"
    return row


def _write_samples(outcome: RuleOutcome, compared: bool, out: TextIO) -> None:
    groups: list[tuple[str, str, deque[Sample]]]
    if compared:
        groups = [("added", "+", outcome.added_samples), ("removed", "-", outcome.removed_samples)]
    else:
        groups = [("newest", " ", outcome.samples)]
    if not any(samples for _, _, samples in groups):
        return
    out.write(f"\n{outcome.rule_id} ({outcome.name})\n")
    for label, mark, samples in groups:
        if samples:
            out.write(f"  {label}:\n")
        for sample in reversed(samples):
            day = sample.published.strftime("%Y-%m-%d")
            out.write(f" {mark} {day}  {sample.title}  [{sample.source}]\n")
            if sample.snippet:
                out.write(f"      {sample.snippet}\n")
