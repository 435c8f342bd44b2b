"""A made-up alert for `newsmon notifier --send-test`: what a real one looks like."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.models import Alert, AlertStory, MatchedTerm


def sample_alert(now: float) -> Alert:
    """A sample alert with a fresh id, so receivers that deduplicate still show it."""
    when = datetime.fromtimestamp(now, UTC)
    story = AlertStory(
        id="newsmon-test-story",
        url="https://example.com/newsmon-test",
        title="newsmon test alert: delivery works",
        source="newsmon",
        published=when,
    )
    match = MatchedTerm(
        term="newsmon",
        field="title",
        matched_text="newsmon",
        snippet="**newsmon** test alert: delivery works",
    )
    return Alert(
        alert_id=f"newsmon-test-{int(now)}",
        rule_id="newsmon-test",
        rule_name="newsmon test",
        severity="info",
        story=story,
        matches=[match],
        first_seen=when,
        raised_at=when,
    )
