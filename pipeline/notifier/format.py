"""What an alert looks like in a chat, and the body a machine receives.

Chat messages are Markdown (Apprise converts them for services that want HTML
and passes them on to those that speak Markdown): the story title linked to the
story, the rule, and the matched snippets with the watch term in bold. Text that
comes from feeds is escaped, so a headline with `*` or `<script>` in it cannot
restyle the message or inject HTML into an e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC

from pipeline.models import Alert, AlertStory, MatchedTerm, SpikeCounts

TITLE_MAX_CHARS = 250
MAX_SNIPPETS = 5
MAX_DIGEST_STORIES = 25
BOLD = "**"

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_URL_UNSAFE = {" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E"}


@dataclass(frozen=True)
class ChatMessage:
    title: str
    body: str


def chat_message(alert: Alert) -> ChatMessage:
    """Title and Markdown body of an alert (or of a digest of a throttled rule's stories)."""
    if alert.kind == "digest":
        return _digest_message(alert)
    if alert.kind == "spike" and alert.spike is not None:
        return _spike_message(alert, alert.spike)
    return _alert_message(alert)


def webhook_body(alert: Alert) -> bytes:
    """The alert's wire JSON: receivers validate it against docs/schemas/Alert.schema.json."""
    return alert.to_bytes()


def _alert_message(alert: Alert) -> ChatMessage:
    story = alert.story
    lines = [BOLD + story_link(story) + BOLD, _about(alert, story)]
    snippets = _snippet_lines(alert.matches)
    if snippets:
        lines += ["", *snippets]
    title = f"{alert.rule_name}: {story.title or story.url}"
    return ChatMessage(_clip(title, TITLE_MAX_CHARS), "\n".join(lines))


def _digest_message(alert: Alert) -> ChatMessage:
    stories = alert.digest or [alert.story]
    count = len(stories)
    noun = "story" if count == 1 else "stories"
    lines = [
        f"Rule {BOLD}{escape_markdown(alert.rule_name)}{BOLD} ({alert.severity}) matched "
        f"{count} {noun}; they come together because the rule is throttled.",
        "",
    ]
    lines += [
        f"- {story_link(s)} · {escape_markdown(s.source)}" for s in stories[:MAX_DIGEST_STORIES]
    ]
    if count > MAX_DIGEST_STORIES:
        lines.append(f"- … and {count - MAX_DIGEST_STORIES} more")
    title = f"{alert.rule_name}: {count} {noun}"
    return ChatMessage(_clip(title, TITLE_MAX_CHARS), "\n".join(lines))


def _spike_message(alert: Alert, spike: SpikeCounts) -> ChatMessage:
    window = span_words(spike.window_seconds)
    counts = spike_counts_text(spike)
    lines = [
        f"Rule {BOLD}{escape_markdown(alert.rule_name)}{BOLD} ({alert.severity}) is spiking: "
        f"{counts}.",
        "",
    ]
    lines += [f"- {story_link(s)} · {escape_markdown(s.source)}" for s in spike.headlines]
    title = f"{alert.rule_name}: spike, {spike.window_count} stories in {window}"
    return ChatMessage(_clip(title, TITLE_MAX_CHARS), "\n".join(lines))


def spike_counts_text(spike: SpikeCounts) -> str:
    """'42 stories in 1h, against 3.1 per 1h over the previous 7d (factor 3, at least 5)'."""
    window = span_words(spike.window_seconds)
    return (
        f"{spike.window_count} stories in {window}, against {spike.baseline_mean:g} per {window} "
        f"over the previous {span_words(spike.baseline_seconds)} "
        f"(factor {spike.factor:g}, at least {spike.min_count})"
    )


def span_words(seconds: int) -> str:
    """A span as the rules file writes it: 90m, 1h, 7d."""
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _about(alert: Alert, story: AlertStory) -> str:
    published = story.published.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rule, source = escape_markdown(alert.rule_name), escape_markdown(story.source)
    return f"Rule {BOLD}{rule}{BOLD} · {alert.severity} · {source} · {published}"


def _snippet_lines(matches: list[MatchedTerm]) -> list[str]:
    seen: set[str] = set()
    lines = []
    for match in matches:
        if match.snippet in seen:
            continue
        seen.add(match.snippet)
        lines.append(f"- {match.field}: {render_snippet(match.snippet)}")
    extra = len(lines) - MAX_SNIPPETS
    if extra > 0:
        lines = [*lines[:MAX_SNIPPETS], f"- … and {extra} more"]
    return lines


def story_link(story: AlertStory) -> str:
    return f"[{escape_markdown(_one_line(story.title) or story.url)}]({safe_url(story.url)})"


def render_snippet(snippet: str) -> str:
    """Escape a snippet but keep its `**match**` marks (when they pair up) as bold."""
    parts = _one_line(snippet).split(BOLD)
    if len(parts) % 2 == 0:
        return escape_markdown(_one_line(snippet))
    return BOLD.join(escape_markdown(part) for part in parts)


def escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def safe_url(url: str) -> str:
    """A URL that cannot end a Markdown link early or open an HTML tag."""
    return "".join(_URL_UNSAFE.get(char, char) for char in url.strip())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
