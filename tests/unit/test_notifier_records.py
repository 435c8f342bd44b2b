from __future__ import annotations

import pytest
from notifier_alerts import make_alert

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.offsets import OffsetTracker
from pipeline.corridor.records import Headers, Message
from pipeline.errors import DecodeError, DeliveryError, SchemaError
from pipeline.notifier import records
from pipeline.notifier.tasks import DeliveryTask

SETTINGS = KafkaSettings()


def task(*, attempts: int = 3) -> DeliveryTask:
    alert = make_alert(7)
    return DeliveryTask(
        alert=alert, payload=alert.to_bytes(), destination="ops-slack",
        queued_at=1714650000.125, attempts=attempts, not_before=1714650042.5,
        last_error="server_error",
    )  # fmt: skip


def consumed(output_value: bytes, headers: Headers, offset: int = 9) -> Message:
    return Message("retry", 1, offset, b"alert-7", output_value, headers)


def test_retry_record_round_trips() -> None:
    original = task()
    out = records.retry_record(SETTINGS, original)
    assert out.topic == SETTINGS.topics.delivery_retry
    assert out.key == "alert-7"
    assert out.value == original.payload
    assert records.task_from_retry(consumed(out.value, out.headers)) == original


@pytest.mark.parametrize(
    ("value", "headers", "error"),
    [
        (b"not json", None, DecodeError),
        (b'{"schema_version": 99}', None, SchemaError),
        (None, (), SchemaError),  # no destination header
        (None, ((records.H_DESTINATION, b"x"), (records.H_ATTEMPTS, b"three")), SchemaError),
    ],
)
def test_damaged_retry_records(
    value: bytes | None, headers: Headers | None, error: type[Exception]
) -> None:
    out = records.retry_record(SETTINGS, task())
    message = consumed(value or out.value, out.headers if headers is None else headers)
    with pytest.raises(error):
        records.task_from_retry(message)


def test_dead_letter_keeps_bytes_and_says_where_and_why() -> None:
    source = Message("alerts", 2, 41, b"story", b"original bytes", (("trace", b"t1"),))
    failed = task(attempts=12)
    out = records.dead_letter(
        SETTINGS, source, failed, DeliveryError("HTTP 410", reason="rejected")
    )
    headers = dict(out.headers)
    assert out.topic == SETTINGS.topics.dead_letter
    assert (out.key, out.value) == (b"story", b"original bytes")
    assert headers[records.H_DESTINATION] == b"ops-slack"
    assert headers["newsmon.error.stage"] == b"notifier"
    assert headers["newsmon.error.reason"] == b"rejected"
    assert headers["newsmon.error.attempts"] == b"12"
    assert headers["newsmon.source.topic"] == b"alerts"
    assert headers["newsmon.source.offset"] == b"41"


def test_offsets_commit_only_up_to_the_first_unsettled_record() -> None:
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.track(("t", 0, offset))
    tracker.track(("t", 1, 0))
    assert tracker.committable() == {("t", 0): 5, ("t", 1): 0}
    tracker.mark_committed(tracker.committable())
    tracker.settle(("t", 0, 6))
    assert tracker.committable() == {}  # 5 still pending
    tracker.settle(("t", 0, 5))
    assert tracker.committable() == {("t", 0): 7}
    tracker.settle(("t", 0, 7))
    tracker.settle(("t", 1, 0))
    assert tracker.committable([("t", 1)]) == {("t", 1): 1}
    assert tracker.committable() == {("t", 0): 8, ("t", 1): 1}
    assert tracker.pending_count() == 0


def test_offsets_forget_revoked_partitions() -> None:
    tracker = OffsetTracker()
    tracker.track(("t", 0, 1))
    tracker.track(("t", 0, 2))
    tracker.settle(("t", 0, 1))
    tracker.track(("t", 1, 4))
    tracker.settle(("t", 1, 4))
    assert tracker.commit_points([("t", 0), ("t", 1), ("t", 9)]) == {("t", 0): 2, ("t", 1): 5}
    assert tracker.forget([("t", 0)]) == {("t", 0, 2)}
    assert not tracker.tracks(("t", 0, 2))
    assert tracker.committable() == {("t", 1): 5}
