"""Delivery records on the wire: retries waiting their turn, and dead letters.

A retry record is the alert's original bytes keyed by alert id, with the
delivery's state in headers (destination, counted attempts, when the notifier
first took it, not-before time, last error). A dead letter is the same bytes on
the dead-letter topic, with the delivery headers and the error headers every
stage writes.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.config import KafkaSettings
from pipeline.corridor.records import HEADER_PREFIX, Headers, Message, Output
from pipeline.corridor.settle import dead_letter_output
from pipeline.errors import PipelineError, SchemaError
from pipeline.models import Alert, decode
from pipeline.notifier.tasks import STAGE, DeliveryTask

H_DESTINATION = HEADER_PREFIX + "destination"
H_ATTEMPTS = HEADER_PREFIX + "delivery.attempts"
H_QUEUED_AT = HEADER_PREFIX + "delivery.queued_at"
H_NOT_BEFORE = HEADER_PREFIX + "delivery.not_before"
H_LAST_ERROR = HEADER_PREFIX + "delivery.last_error"


def delivery_headers(task: DeliveryTask) -> Headers:
    return (
        (H_DESTINATION, task.destination.encode()),
        (H_ATTEMPTS, str(task.attempts).encode()),
        (H_QUEUED_AT, repr(task.queued_at).encode()),
        (H_NOT_BEFORE, repr(task.not_before).encode()),
        (H_LAST_ERROR, task.last_error.encode()),
    )


def retry_record(settings: KafkaSettings, task: DeliveryTask) -> Output:
    return Output(
        settings.topics.delivery_retry, task.alert.alert_id, task.payload, delivery_headers(task)
    )


def task_from_retry(message: Message) -> DeliveryTask:
    """The delivery a retry record stands for; `DecodeError`/`SchemaError` if it is damaged."""
    alert = decode(Alert, message.value)
    destination = _header(message, H_DESTINATION)
    if not destination:
        raise SchemaError(f"retry record without a {H_DESTINATION} header")
    try:
        return DeliveryTask(
            alert=alert,
            payload=message.value,
            destination=destination,
            queued_at=float(_header(message, H_QUEUED_AT)),
            attempts=int(_header(message, H_ATTEMPTS)),
            not_before=float(_header(message, H_NOT_BEFORE)),
            last_error=_header(message, H_LAST_ERROR),
        )
    except ValueError as exc:
        raise SchemaError(f"retry record with a bad delivery header: {exc}") from exc


def _header(message: Message, name: str) -> str:
    value = message.header(name)
    return value.decode("utf-8", "replace") if value is not None else ""


def dead_letter(
    settings: KafkaSettings, message: Message, task: DeliveryTask, error: PipelineError
) -> Output:
    """The alert's bytes on the dead-letter topic: which destination, why, after how many tries,
    and where the record that gave up was read from."""
    source = replace(message, headers=delivery_headers(task))
    return dead_letter_output(settings.topics.dead_letter, STAGE, source, error, task.attempts)
