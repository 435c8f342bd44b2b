"""OPML import into feeds.yaml and the status table."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Feed, load_feeds
from pipeline.errors import ConfigError
from pipeline.poller.feedlist import append_feeds, format_table, plan_import, status_rows
from pipeline.poller.state import FeedState

OPML = Path(__file__).resolve().parent.parent / "testdata" / "feeds" / "subscriptions.opml"


def test_plan_import() -> None:
    existing = [Feed(url="https://already.example.com/feed", name="Example World")]
    plan = plan_import(existing, OPML.read_bytes())
    assert [(f.name, f.url, f.tags, f.language) for f in plan.added] == [
        ("Example World (2)", "https://news.example.com/world.rss", ["world"], None),
        ("Gadgets", "https://gadgets.example.org/atom.xml", ["tech", "hardware", "reviews"], "de"),
        ("Example World (3)", "https://other.example.com/rss", [], None),
    ]
    assert len(plan.skipped) == 2
    assert any("already" in reason for reason in plan.skipped)
    assert any("ftp://" in reason for reason in plan.skipped)


def test_bad_opml() -> None:
    with pytest.raises(ConfigError):
        plan_import([], b"<opml><body><outline")


def test_append_keeps_comments_and_existing_feeds(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "# my feeds\nfeeds:\n  # news\n  - {name: one, url: 'https://one.example/rss'}\n",
        encoding="utf-8",
    )
    append_feeds(path, [Feed(url="https://two.example/rss", name="two", tags=["x"])])
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# my feeds\nfeeds:\n  # news\n")
    assert [f.name for f in load_feeds(path)] == ["one", "two"]


@pytest.mark.parametrize("content", [None, "feeds: []\n", "# nothing yet\n"])
def test_append_to_missing_or_empty_files(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "feeds.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    append_feeds(path, [Feed(url="https://two.example/rss", name="two")])
    assert [f.url for f in load_feeds(path)] == ["https://two.example/rss"]


def test_status_table() -> None:
    feeds = [Feed(url="https://a.example/f", name="a"), Feed(url="https://b.example/f", name="b")]
    states = {
        "a": FeedState(name="a", last_success=1000.0, next_poll=1300.0, items_seen=12),
        "b": FeedState(
            name="b", last_error="http_4xx: HTTP 404", last_error_at=900.0, consecutive_errors=3
        ),
    }
    table = format_table(status_rows(feeds, states, now=1060.0))
    lines = table.splitlines()
    assert lines[0].split() == [
        "FEED",
        "LAST",
        "SUCCESS",
        "ERRORS",
        "NEXT",
        "POLL",
        "ITEMS",
        "SEEN",
        "LAST",
        "ERROR",
    ]
    assert "1m ago" in lines[1] and "in 4m" in lines[1] and "12" in lines[1]
    assert "http_4xx: HTTP 404 (3m ago)" in lines[2] and "never" in lines[2]
