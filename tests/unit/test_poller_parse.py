"""Feed bytes -> entries -> RawStory, on hand-written tricky feeds in testdata/feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import Feed
from pipeline.errors import FeedError, Skip
from pipeline.models import story_id_for
from pipeline.poller.normalise import (
    FeedReading,
    canonical_url,
    language_code,
    published_time,
    read_feed,
    story_key,
)
from pipeline.poller.parse import Entry, html_to_text, parse_feed

FEEDS = Path(__file__).resolve().parent.parent / "testdata" / "feeds"
FEED_URL = "https://feeds.example.com/x/feed.xml"
SEEN_AT = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)


def read(
    name: str, feed: Feed | None = None, content_type: str = "application/rss+xml"
) -> FeedReading:
    feed = feed or Feed(url=FEED_URL, name="test", tags=["wire"])
    body = (FEEDS / name).read_bytes()
    return read_feed(body, feed=feed, url=FEED_URL, content_type=content_type, seen_at=SEEN_AT)


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        ("https://a.example/x?utm_source=rss&utm_medium=feed&id=42#comments",
         "https://a.example/x?id=42"),
        ("https://A.Example:443/x?b=2&a=1", "https://a.example/x?a=1&b=2"),
        ("https://a.example/x?fbclid=abc&gclid=def", "https://a.example/x"),
        ("/relative/path", "https://feeds.example.com/relative/path"),
        ("story.html", "https://feeds.example.com/x/story.html"),
        ("  https://a.example/spaced  ", "https://a.example/spaced"),
        ("mailto:editor@example.com", None),
        ("javascript:alert(1)", None),
    ],
)  # fmt: skip
def test_canonical_url(link: str, canonical: str | None) -> None:
    assert canonical_url(link, FEED_URL) == canonical


def test_same_story_same_id_whatever_the_guid_or_title() -> None:
    first = Entry("https://a.example/x?utm_source=a", "guid-1", "Title", "", None)
    relisted = Entry("https://a.example/x#top", "guid-2", "Title (updated)", "", None)
    assert story_key(first, "f1", FEED_URL) == story_key(relisted, "f2", FEED_URL)


def test_guid_only_entries_are_scoped_to_their_feed() -> None:
    entry = Entry(None, "42", "t", "", None)
    assert story_key(entry, "a", FEED_URL)[0] != story_key(entry, "b", FEED_URL)[0]
    with pytest.raises(Skip):
        story_key(Entry(None, None, "", "", None), "a", FEED_URL)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (datetime(2024, 1, 2, 9, 30, tzinfo=UTC).timestamp(), datetime(2024, 1, 2, 9, 30, tzinfo=UTC)),
        (None, SEEN_AT),
        (0.0, SEEN_AT),  # 1970: absurd
        (datetime(2100, 1, 1, tzinfo=UTC).timestamp(), SEEN_AT),  # far future
        (1e20, SEEN_AT),  # overflow
    ],
)  # fmt: skip
def test_published_time(stamp: float | None, expected: datetime) -> None:
    assert published_time(stamp, SEEN_AT) == expected


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("a <b>bold</b> move", "a bold move"),
        ("x<script>alert(1)</script>y", "xy"),
        ("caf&eacute; &amp; bar", "café & bar"),
        ("  plain   text ", "plain text"),
        ("", ""),
        ("<P>Upper</P><BR/>case", "Upper case"),
        ("<a title=\"1 > 0\" href='/x'>link</a> text", "link text"),
        ("a < b and c<d", "a < b and c<d"),
        ("one<!-- <p>hidden</p> -->two", "onetwo"),
        ("<p>x</p><STYLE>p {}</STYLE><p>y</p>", "x y"),
        ("<![CDATA[raw]]>text", "text"),
        ("<em>caf&eacute;</em>&nbsp;time", "café time"),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_language_code() -> None:
    assert language_code(None, "en-GB") == "en"
    assert language_code("pt_BR", "en") == "pt"
    assert language_code(None, "  ") is None


def test_rss_basic() -> None:
    reading = read("rss_basic.xml")
    climate, markets = reading.stories
    assert climate.url == "https://news.example.com/world/climate-deal?id=42"
    assert climate.id == story_id_for(climate.url)
    assert climate.title == "Leaders meet & agree on climate deal"
    assert climate.summary == "Leaders met in Geneva. They agreed."
    assert climate.published == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    assert climate.first_seen == SEEN_AT
    assert climate.tags == ["wire", "Politics", "Climate"]
    assert climate.language == "en"
    assert climate.guid == "climate-42"
    assert markets.title == "AT&T < Verizon? Markets react"  # text/plain kept literally
    assert markets.url == "https://feeds.example.com/business/att-verizon"
    assert reading.ttl_seconds == 1800
    assert reading.malformed is None


def test_atom_relative_links_and_undated_entries() -> None:
    cpu, undated = read("atom_relative.xml", content_type="application/atom+xml").stories
    assert cpu.url == "https://feeds.example.com/x/posts/cpu.html"
    assert cpu.title == "Nouveau processeur"
    assert cpu.summary == "Plus rapide."
    assert cpu.language == "fr"
    assert undated.published == SEEN_AT


def test_xml_base_is_honoured_even_nested_and_relative() -> None:
    nested, absolute, rooted = read(
        "atom_xml_base.xml", content_type="application/atom+xml"
    ).stories
    assert nested.url == "https://feeds.example.com/x/archive/2024/jan/story.html"
    assert absolute.url == "https://mirror.example.net/news/other.html"
    assert rooted.url == "https://feeds.example.com/top.html"


def test_mislabeled_encoding_is_recovered() -> None:
    reading = read("latin1_mislabeled.xml")
    assert [s.title for s in reading.stories] == ["Crème brûlée prices soar"]
    assert reading.malformed is not None and "encoding" in reading.malformed.lower()


def test_malformed_feed_yields_its_recoverable_entries() -> None:
    reading = read("broken_recoverable.xml")
    assert [s.url for s in reading.stories] == [
        "https://broken.example.com/one",
        "https://broken.example.com/two",
    ]
    assert reading.malformed is not None
    assert reading.skipped == 1


def test_entries_without_links_or_dates() -> None:
    reading = read("no_links.xml")
    by_title = {s.title: s for s in reading.stories}
    assert by_title["Guid only"].url == "https://wire.example.net/"  # falls back to the site
    assert by_title["Guid only"].id == story_id_for("guid:test:wire-0001")
    assert by_title["Permalink guid"].url == "https://wire.example.net/story/2"
    assert by_title["Title only, no link or guid"].summary == "Body"
    for title in ("Ancient", "Future", "Garbage date"):
        assert by_title[title].published == SEEN_AT
    assert reading.skipped == 1  # the empty <item/>


def test_a_well_formed_empty_feed_is_fine() -> None:
    assert read("empty_channel.xml").stories == ()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ((FEEDS / "not_a_feed.html").read_bytes(), "not_a_feed"),
        (b"", "not_a_feed"),
        (b"\x00\xff\xfe garbage", "not_a_feed"),
        (b'<rss version="2.0"><channel><item><title>', "no_entries"),
    ],
)
def test_documents_that_yield_nothing_are_feed_errors(body: bytes, reason: str) -> None:
    feed = Feed(url=FEED_URL, name="bad")
    with pytest.raises(FeedError) as caught:
        read_feed(body, feed=feed, url=FEED_URL, content_type="text/html", seen_at=SEEN_AT)
    assert caught.value.reason == reason


def test_huge_feed_is_capped() -> None:
    items = "".join(
        f"<item><title>t{i}</title><link>https://big.example/{i}</link></item>" for i in range(1500)
    )
    body = f'<rss version="2.0"><channel><title>Big</title>{items}</channel></rss>'.encode()
    document = parse_feed(body, url=FEED_URL, content_type="application/rss+xml")
    assert len(document.entries) == 1000
    assert document.entries[0].link == "https://big.example/0"
