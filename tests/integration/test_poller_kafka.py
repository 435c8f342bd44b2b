"""The poller against a real broker: `newsmon poller --once`, state in Kafka, scale-out."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from poller_feedserver import FeedServer, Route, rss

from pipeline.cli import main
from pipeline.config import Feed, HttpSettings, KafkaSettings, PollerSettings, Settings
from pipeline.corridor.kafka import clients
from pipeline.models import RawStory, decode
from pipeline.poller.commands import publish_stories
from pipeline.poller.stage import FeedPoller
from pipeline.poller.worker import KafkaOwnership, KafkaStateStore

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    yield srv
    srv.close()


def raw_stories(settings: KafkaSettings) -> list[RawStory]:
    return [decode(RawStory, m.value) for m in clients.read_to_end(settings, settings.topics.raw)]


def use_topics(monkeypatch: pytest.MonkeyPatch, settings: KafkaSettings) -> None:
    monkeypatch.setenv("NEWSMON_KAFKA__BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("NEWSMON_KAFKA__PARTITIONS", str(settings.partitions))
    monkeypatch.setenv("NEWSMON_LOG__LEVEL", "WARNING")
    for name, topic in settings.topics.model_dump().items():
        monkeypatch.setenv(f"NEWSMON_KAFKA__TOPICS__{name.upper()}", topic)


def test_poller_once_publishes_keeps_state_in_kafka_and_reports_status(
    server: FeedServer,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.route("/world", Route(rss([("W1", "https://s.example/w1"), ("W2", "https://s.example/w2")]),
                                 etag='"w"'))  # fmt: skip
    server.route("/tech", Route(rss([("T1", "https://s.example/t1"), ("W1 again", "https://s.example/w1")]),
                                etag='"t"'))  # fmt: skip
    server.route("/broken", Route(b"<html>nope</html>", headers={"Content-Type": "text/html"}))
    feeds_file = tmp_path / "feeds.yaml"
    feeds = [{"name": n, "url": server.url(f"/{n}")} for n in ("world", "tech", "broken")]
    feeds_file.write_text(yaml.safe_dump({"feeds": feeds}), encoding="utf-8")
    use_topics(monkeypatch, kafka_settings)
    args = ["--feeds", str(feeds_file), "--state-dir", str(tmp_path / "state")]

    assert main(["poller", "--once", "--allow-private-networks", *args]) == 0
    stories = raw_stories(kafka_settings)
    assert sorted(s.url for s in stories) == [f"https://s.example/{x}" for x in ("t1", "w1", "w2")]
    records = list(clients.read_to_end(kafka_settings, kafka_settings.topics.raw))
    assert all(r.key == decode(RawStory, r.value).id.encode() for r in records)

    assert main(["poller", "--once", "--allow-private-networks", *args]) == 0
    assert len(raw_stories(kafka_settings)) == 3  # nothing twice after a restart
    assert server.hits("/world")[-1].headers.get("if-none-match") == '"w"'  # validators kept

    capsys.readouterr()
    assert main(["feeds", "status", *args]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("FEED")
    broken = next(line for line in table if line.startswith("broken"))
    assert "not_a_feed" in broken


# --- scale-out --------------------------------------------------------------------------


class Replica:
    """One poller replica in a thread, with its own producer, store and group membership."""

    def __init__(self, feeds: list[Feed], settings: Settings) -> None:
        kafka = settings.kafka
        self.producer = clients.Producer(kafka)
        self.published: list[RawStory] = []
        self.ownership = KafkaOwnership(kafka)
        self.store = KafkaStateStore(kafka, self.producer)
        self.poller = FeedPoller(
            feeds, settings, publish=self.publish, store=self.store, ownership=self.ownership
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def publish(self, stories: list[RawStory]) -> None:
        publish_stories(self.producer, self.poller.settings.kafka.topics.raw, stories)
        self.published.extend(stories)

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self.poller.run(self.stop))
        finally:
            self.ownership.close()
            self.store.close()
            self.producer.close()

    def shut_down(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


@pytest.mark.slow
def test_replicas_share_feeds_and_take_over_a_dead_one(
    server: FeedServer, kafka_settings: KafkaSettings
) -> None:
    names = [f"feed-{i}" for i in range(8)]
    items: dict[str, list[tuple[str, str]]] = {n: [] for n in names}

    def add_story(round_: int) -> None:
        for name in names:
            items[name].insert(0, (f"{name} r{round_}", f"https://s.example/{name}/{round_}"))
            server.route(f"/{name}", Route(rss(items[name])))

    add_story(0)
    feeds = [Feed(url=server.url(f"/{n}"), name=n, interval=1) for n in names]
    settings = Settings(
        kafka=kafka_settings,
        http=HttpSettings(allow_private_networks=True, timeout_seconds=5),
        poller=PollerSettings(parse_workers=1, min_interval_seconds=0.2, jitter_fraction=0),
    )
    ownership_of = KafkaOwnership.__new__(KafkaOwnership)
    ownership_of._partitions = kafka_settings.partitions
    assert len({ownership_of.partition_of(n) for n in names}) == 2  # both partitions in use

    first = Replica(feeds, settings)
    replicas = [first]
    try:

        def published() -> list[RawStory]:
            return [s for r in replicas for s in r.published]

        wait_for(lambda: len(published()) == 8)
        second = Replica(feeds, settings)
        replicas.append(second)
        # during the rebalance the first replica may briefly still hold what it is giving up
        wait_for(
            lambda: (
                bool(first.poller.owned)
                and bool(second.poller.owned)
                and first.poller.owned.isdisjoint(second.poller.owned)
                and first.poller.owned | second.poller.owned == set(names)
            )
        )

        add_story(1)
        wait_for(lambda: len(published()) >= 16)
        assert {s.feed for s in second.published} == second.poller.owned

        second.shut_down()
        wait_for(lambda: first.poller.owned == set(names))
        add_story(2)
        wait_for(lambda: len(published()) >= 24)
        time.sleep(2)  # a few more polls: still nothing twice
        counts = Counter(s.id for s in published())
        assert len(counts) == 24 and max(counts.values()) == 1
        on_topic = Counter(s.id for s in raw_stories(kafka_settings))
        assert len(on_topic) == 24 and max(on_topic.values()) == 1
    finally:
        for replica in replicas:
            replica.shut_down()
