"""The message-bus contract every backend implements.

Delivery guarantee: **at-least-once**.  A consumer receives each message of its
assigned partitions in offset order; its group's position moves forward only when
it calls :meth:`Consumer.commit` after it has durably handed off the result.  A
consumer that dies (or closes) before committing leaves the group's committed
offset where it was, and whichever member gets the partition next receives the
uncommitted messages again.  Sinks must therefore be idempotent: results are keyed
by stable IDs so a redelivered message overwrites instead of duplicating.

Messages are keyed by camera ID; the partition is ``murmur2(key) % partitions``
(Kafka's default partitioner) on every backend, so one camera's messages stay
ordered within one partition.

A message that cannot be processed goes to the dead-letter topic
``<topic>.dlq`` with its original key, value and headers plus headers saying
why, where it came from (topic, partition, offset) and when.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DLQ_SUFFIX = ".dlq"
HEADER_DLQ_REASON = "tubeline-dlq-reason"
HEADER_DLQ_TOPIC = "tubeline-dlq-topic"
HEADER_DLQ_PARTITION = "tubeline-dlq-partition"
HEADER_DLQ_OFFSET = "tubeline-dlq-offset"
HEADER_DLQ_GROUP = "tubeline-dlq-group"
HEADER_DLQ_TIME = "tubeline-dlq-time-ms"


class BadMessage(ValueError):
    """A message that can never be processed (malformed, undecodable): it goes to the dead-letter topic.

    Raised by handlers (:meth:`pipeline.runtime.worker.ConsumerWorker.handle_message`, :mod:`pipeline.crops`);
    the worker sends the message to ``<topic>.dlq`` through :class:`DeadLetter` and carries on.
    """


class BusError(RuntimeError):
    """The bus backend failed (unreachable broker, timeout, rejected write)."""


@dataclass(frozen=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True)
class Message:
    """A consumed message. ``headers`` keeps the order and duplicates the producer sent."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str, default: bytes | None = None) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def header_str(self, name: str, default: str = "") -> str:
        value = self.header(name)
        return default if value is None else value.decode("utf-8", "replace")


Headers = Mapping[str, bytes | str] | Sequence[tuple[str, bytes | str]] | None


def normalize_headers(headers: Headers) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), v.encode("utf-8") if isinstance(v, str) else bytes(v)) for k, v in items]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    index = length4 * 4
    if extra >= 3:
        h ^= data[index + 2] << 16
    if extra >= 2:
        h ^= data[index + 1] << 8
    if extra >= 1:
        h ^= data[index]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Kafka's default partition for ``key`` (``fallback`` for keyless messages)."""
    if key is None:
        return fallback % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    # Retention is a broker setting; -1 keeps forever.
    retention_ms: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)


class Producer(abc.ABC):
    """Sends messages. ``send`` may buffer; ``flush`` returns once everything is acknowledged.

    A backend that can lose its broker keeps unacknowledged messages and sends them again until they are
    acknowledged: ``flush`` then waits (``degraded`` says why) and raises :class:`BusError` only when its
    timeout passes or the stop event given to :meth:`bind_stop` is set."""

    stop_event: threading.Event | None = None

    def bind_stop(self, event: threading.Event) -> None:
        """Let ``event`` end waits for the broker (the worker is stopping)."""
        self.stop_event = event

    @property
    def degraded(self) -> str | None:
        """Why messages are not being acknowledged right now (None when they are)."""
        return None

    @abc.abstractmethod
    def send(self, topic: str, value: bytes, key: bytes | str | None = None, headers: Headers = None) -> None: ...

    @abc.abstractmethod
    def flush(self, timeout: float | None = None) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Consumer(abc.ABC):
    """A member of a consumer group. Commit after processing; see the module docstring."""

    group: str

    @abc.abstractmethod
    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        """Up to ``max_records`` messages, waiting at most ``timeout`` seconds for the first."""

    @abc.abstractmethod
    def commit(self, messages: Iterable[Message] | None = None) -> None:
        """Commit past ``messages`` (per partition, the highest offset + 1), or past everything polled."""

    @abc.abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next poll of an assigned partition start at ``offset``."""

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]: ...

    @abc.abstractmethod
    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp`` (next offset to read), or None."""

    @abc.abstractmethod
    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next message written to each partition will get (Kafka: asked of the broker, and for
        partitions this member has fetched from, at least the high-water mark of its last fetch)."""

    def caught_up(self, tp: TopicPartition) -> bool:
        """Whether this member has been handed every message of an assigned ``tp`` written so far, as far as it
        knows (Kafka: the high-water mark of the last fetch; False while that is unknown). A worker asks before
        it treats a silent source as gone: frames that wait in the partition are not silence."""
        return True

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group without committing anything further."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus(abc.ABC):
    """Factory for producers and consumers on one cluster."""

    name: str

    @abc.abstractmethod
    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the topics that do not exist yet (existing ones are left as they are)."""

    @abc.abstractmethod
    def producer(self) -> Producer: ...

    @abc.abstractmethod
    def consumer(self, topics: Sequence[str], group: str, *, client_id: str | None = None) -> Consumer: ...

    def close(self) -> None:
        """Release shared resources."""


def dead_letter_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


class DeadLetter:
    """Sends a message that could not be processed to ``<topic>.dlq``, unchanged, with the reason.

    The original key, value and headers are kept; ``tubeline-dlq-*`` headers record the
    reason, origin topic/partition/offset, consumer group and time. Call ``flush`` before
    committing the original offset so the failure is durable before the input is dropped.
    """

    def __init__(self, producer: Producer, group: str) -> None:
        self._producer = producer
        self._group = group
        self.count = 0

    def send(self, message: Message, reason: str) -> None:
        headers = list(message.headers) + [
            (HEADER_DLQ_REASON, reason.encode("utf-8")[:4096]),
            (HEADER_DLQ_TOPIC, message.topic.encode()),
            (HEADER_DLQ_PARTITION, str(message.partition).encode()),
            (HEADER_DLQ_OFFSET, str(message.offset).encode()),
            (HEADER_DLQ_GROUP, self._group.encode()),
            (HEADER_DLQ_TIME, str(int(time.time() * 1000)).encode()),
        ]
        self._producer.send(dead_letter_topic(message.topic), message.value, key=message.key, headers=headers)
        self.count += 1

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)
