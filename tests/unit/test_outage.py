"""The broker watch: what counts as an outage, what it counts, when it gives up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
)

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.outage import BrokerUnavailable, BrokerWatch, is_transient
from pipeline.metrics import Metrics


def watch(exit_after: float = 60.0, metrics: Metrics | None = None) -> BrokerWatch:
    settings = KafkaSettings(unavailable_exit_seconds=exit_after)
    return BrokerWatch(settings, "extractor", metrics, threading.Event())


def value(metrics: Metrics, name: str) -> float:
    sample = metrics.registry.get_sample_value(name, {"client": "extractor"})
    assert sample is not None, name
    return sample


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (KafkaConnectionError("111 ECONNREFUSED"), True),
        (KafkaTimeoutError("Unable to bootstrap"), True),
        (NodeNotReadyError(), True),
        (TopicAuthorizationFailedError(), False),
        (ValueError("not Kafka"), False),
    ],
)
def test_only_errors_that_waiting_cures_count_as_an_outage(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_not_ready_until_the_first_answer_then_down_and_up_again_with_the_seconds_counted() -> None:
    metrics = Metrics()
    broker = watch(metrics=metrics)
    assert value(metrics, "newsmon_kafka_up") == 0
    broker.failed(KafkaTimeoutError("Unable to bootstrap"))  # at start: waiting, no outage
    broker.answered()
    assert value(metrics, "newsmon_kafka_up") == 1
    assert value(metrics, "newsmon_kafka_outages_total") == 0
    broker.failed(KafkaConnectionError("111 ECONNREFUSED"))
    broker.failed("group coordinator unreachable")
    assert value(metrics, "newsmon_kafka_up") == 0
    assert value(metrics, "newsmon_kafka_outages_total") == 1  # one outage, two failures
    time.sleep(0.2)
    broker.answered()
    assert value(metrics, "newsmon_kafka_up") == 1
    assert 0.2 <= value(metrics, "newsmon_kafka_unavailable_seconds_total") < 2


def test_a_real_error_is_raised_at_once() -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        watch().failed(TopicAuthorizationFailedError())


def test_it_gives_up_only_after_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    broker = watch(exit_after=0.3)
    broker.failed(KafkaConnectionError("111 ECONNREFUSED"))
    broker.check()  # within the deadline: nothing
    time.sleep(0.4)
    with pytest.raises(BrokerUnavailable, match="unavailable_exit_seconds"):
        broker.failed(KafkaConnectionError("111 ECONNREFUSED"))
    assert "longer than kafka.unavailable_exit_seconds, exiting" in caplog.text


def test_call_retries_with_backoff_until_the_broker_answers() -> None:
    answers: Iterator[Exception | str] = iter(
        [KafkaConnectionError("refused"), KafkaTimeoutError("slow"), "metadata"]
    )

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    started = time.monotonic()
    assert watch().call(flaky, "metadata") == "metadata"
    assert time.monotonic() - started >= 0.5 + 1.0  # two backoffs: 0.5 s, then 1 s


def test_call_stops_waiting_when_the_worker_is_asked_to_stop() -> None:
    broker = watch()
    broker.stop.set()

    def refused() -> None:
        raise KafkaConnectionError("111 ECONNREFUSED")

    with pytest.raises(BrokerUnavailable, match="stopped"):
        broker.call(refused, "connect")


@pytest.mark.parametrize(
    ("replication", "insync", "expected"),
    [(1, 2, None), (3, 2, "2"), (2, 2, "2"), (2, 3, "2"), (3, 1, "1")],
)
def test_topics_create_asks_for_min_insync_replicas_on_replicated_topics(
    replication: int, insync: int, expected: str | None
) -> None:
    from pipeline.corridor.kafka.clients import topic_specs

    settings = KafkaSettings(replication_factor=replication, min_insync_replicas=insync)
    for spec in topic_specs(settings):
        assert spec.topic_configs.get("min.insync.replicas") == expected, spec.name
    compacted = [s for s in topic_specs(settings) if s.name == settings.topics.poller_state]
    assert compacted[0].topic_configs["cleanup.policy"] == "compact"
