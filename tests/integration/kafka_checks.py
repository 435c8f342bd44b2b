"""What a consumer group committed, and where topics end: for the at-least-once checks."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from pipeline.config import KafkaSettings
from pipeline.corridor.kafka.clients import read_to_end


def committed(kafka: KafkaSettings, group: str, topic: str) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    try:
        found = {}
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            offset = consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                found[(topic, partition)] = offset
        return found
    finally:
        consumer.close()


def ends(kafka: KafkaSettings, topic: str) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for message in read_to_end(kafka, topic):
        last[(topic, message.partition)] = message.offset + 1
    return last
