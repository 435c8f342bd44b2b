from __future__ import annotations

import pytest
from notifier_alerts import expected, load_alert

from pipeline.models import Alert, AlertStory, MatchedTerm, decode
from pipeline.notifier import format as fmt


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain words", "plain words"),
        ("*bold* _it_", r"\*bold\* \_it\_"),
        ("[link](x)", r"\[link\](x)"),
        ("<script>alert(1)</script>", r"\<script\>alert(1)\</script\>"),
        ("a\\b `code` #tag |x| ~y~", r"a\\b \`code\` \#tag \|x\| \~y\~"),
    ],
)
def test_escape_markdown(text: str, escaped: str) -> None:
    assert fmt.escape_markdown(text) == escaped


@pytest.mark.parametrize(
    ("snippet", "rendered"),
    [
        ("…says **Tesla** will…", "…says **Tesla** will…"),
        ("**A** and **B**", "**A** and **B**"),
        ("unpaired ** mark", r"unpaired \*\* mark"),
        ("**x_y** [z]", r"**x\_y** \[z\]"),
        ("line\nbreak  **t**", "line break **t**"),
    ],
)
def test_render_snippet_keeps_marks_and_escapes_the_rest(snippet: str, rendered: str) -> None:
    assert fmt.render_snippet(snippet) == rendered


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://x.test/a?b=1", "https://x.test/a?b=1"),
        ("https://x.test/a (b)", "https://x.test/a%20%28b%29"),
        ("https://x.test/<i>", "https://x.test/%3Ci%3E"),
    ],
)
def test_safe_url(url: str, safe: str) -> None:
    assert fmt.safe_url(url) == safe


def test_alert_message_links_the_title_and_lists_unique_snippets() -> None:
    message = fmt.chat_message(load_alert())
    assert message.title == "EV makers: Tesla recalls *2 million* cars [update] <b>"
    assert message.body == expected("alert.md")


def test_digest_lists_every_story() -> None:
    message = fmt.chat_message(load_alert("digest.json"))
    assert message.title == "EV makers: 2 stories"
    assert message.body == expected("digest.md")


def test_long_digest_is_cut_with_a_count() -> None:
    base = load_alert("digest.json")
    stories = [
        base.digest[0].model_copy(update={"id": f"s{i}", "title": f"Story {i}"}) for i in range(30)
    ]
    body = fmt.chat_message(base.model_copy(update={"digest": stories})).body
    assert body.count("\n- [Story ") == fmt.MAX_DIGEST_STORIES
    assert body.endswith("- … and 5 more")


def test_many_snippets_are_cut_with_a_count() -> None:
    base = load_alert()
    matches = [
        MatchedTerm(term="t", field="text", matched_text="t", snippet=f"snippet **t** {i}")
        for i in range(8)
    ]
    body = fmt.chat_message(base.model_copy(update={"matches": matches})).body
    assert "snippet **t** 4" in body
    assert "snippet **t** 5" not in body
    assert body.endswith("- … and 3 more")


def test_alert_without_title_or_matches_uses_the_url() -> None:
    base = load_alert()
    story = AlertStory.model_validate({**base.story.model_dump(), "title": ""})
    message = fmt.chat_message(base.model_copy(update={"story": story, "matches": []}))
    assert message.title == f"EV makers: {story.url}"
    assert message.body.splitlines()[0] == f"**[{story.url}]({fmt.safe_url(story.url)})**"
    assert len(message.body.splitlines()) == 2


def test_title_is_clipped() -> None:
    base = load_alert()
    story = AlertStory.model_validate({**base.story.model_dump(), "title": "word " * 100})
    title = fmt.chat_message(base.model_copy(update={"story": story})).title
    assert len(title) == fmt.TITLE_MAX_CHARS
    assert title.endswith("…")


def test_webhook_body_is_the_alert_contract() -> None:
    alert = load_alert()
    body = fmt.webhook_body(alert)
    assert decode(Alert, body) == alert
    assert body == alert.to_bytes()
