"""Message bus: one small interface (``base``), an in-memory backend and a Kafka backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.bus.base import (
    Bus,
    BusError,
    Consumer,
    DeadLetter,
    Message,
    Producer,
    TopicPartition,
    TopicSpec,
    dead_letter_topic,
    partition_for,
)

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig


def open_bus(config: TubelineConfig) -> Bus:
    """The bus the configuration names. Kafka is imported only when used."""
    if config.bus.backend == "kafka":
        from pipeline.bus.kafka import KafkaBus

        return KafkaBus(
            config.bus.kafka, topic_prefix=config.bus.topic_prefix, default_partitions=config.bus.default_partitions
        )
    from pipeline.bus.memory import MemoryBus

    return MemoryBus(default_partitions=config.bus.default_partitions, max_message_bytes=config.bus.kafka.max_message_bytes)


__all__ = [
    "Bus",
    "BusError",
    "Consumer",
    "DeadLetter",
    "Message",
    "Producer",
    "TopicPartition",
    "TopicSpec",
    "dead_letter_topic",
    "open_bus",
    "partition_for",
]
