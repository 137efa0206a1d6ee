"""In-memory bus: the embedded default, with Kafka's semantics in one process.

Topics have partitions (Kafka's murmur2 partitioner on the key), consumer groups
split partitions among their members and rebalance when members join or leave,
and a group's position moves only on commit. A member that leaves without
committing hands its uncommitted messages to the next owner — the same
at-least-once behaviour as the Kafka backend (see :mod:`pipeline.bus.base`).
Nothing is persisted: the bus lives as long as the process.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.bus.base import (
    Bus,
    BusError,
    Consumer,
    Headers,
    Message,
    Producer,
    TopicPartition,
    TopicSpec,
    normalize_headers,
    partition_for,
)

log = logging.getLogger(__name__)


class CommitFailedError(BusError):
    """Commit for a partition this member no longer owns (it was rebalanced away)."""


@dataclass
class _Group:
    members: dict[int, MemoryConsumer] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    generation: int = 0


class MemoryBus(Bus):
    """Thread-safe in-process bus. Topics are created on first use with ``default_partitions``."""

    name = "memory"

    def __init__(self, default_partitions: int = 1, max_message_bytes: int = 64 << 20) -> None:
        self.default_partitions = default_partitions
        self.max_message_bytes = max_message_bytes
        self._lock = threading.Condition()
        self._topics: dict[str, list[list[Message]]] = {}
        self._groups: dict[str, _Group] = {}
        self._ids = itertools.count(1)
        self._round_robin = itertools.count()

    # -- topics ---------------------------------------------------------------------------------
    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        with self._lock:
            for spec in specs:
                self._topics.setdefault(spec.name, [[] for _ in range(spec.partitions)])

    def _partitions(self, topic: str) -> list[list[Message]]:
        parts = self._topics.get(topic)
        if parts is None:
            parts = self._topics[topic] = [[] for _ in range(self.default_partitions)]
        return parts

    def topics(self) -> dict[str, int]:
        with self._lock:
            return {name: len(parts) for name, parts in self._topics.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return {i: len(p) for i, p in enumerate(self._partitions(topic))}

    # -- produce --------------------------------------------------------------------------------
    def _append(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        if len(value) > self.max_message_bytes:
            msg = f"message of {len(value)} bytes exceeds max_message_bytes={self.max_message_bytes}"
            raise BusError(msg)
        with self._lock:
            parts = self._partitions(topic)
            index = partition_for(key, len(parts), next(self._round_robin))
            log_ = parts[index]
            log_.append(
                Message(topic, index, len(log_), key, bytes(value), tuple(headers), int(time.time() * 1000))
            )
            self._lock.notify_all()

    def producer(self) -> Producer:
        return MemoryProducer(self)

    # -- groups ---------------------------------------------------------------------------------
    def consumer(self, topics: Sequence[str], group: str, *, client_id: str | None = None) -> Consumer:
        return MemoryConsumer(self, list(topics), group)

    def _join(self, consumer: MemoryConsumer) -> int:
        with self._lock:
            member_id = next(self._ids)
            for topic in consumer.topics:
                self._partitions(topic)
            state = self._groups.setdefault(consumer.group, _Group())
            state.members[member_id] = consumer
            self._rebalance(state)
            return member_id

    def _leave(self, consumer: MemoryConsumer) -> None:
        with self._lock:
            state = self._groups.get(consumer.group)
            if state and state.members.pop(consumer.member_id, None) is not None:
                self._rebalance(state)

    def _rebalance(self, state: _Group) -> None:
        """Range-free round-robin assignment of every subscribed partition; positions reset to committed."""
        state.generation += 1
        members = sorted(state.members.items())
        for _, member in members:
            member._assigned = {}
        by_topic: dict[str, list[tuple[int, MemoryConsumer]]] = {}
        for member_id, member in members:
            for topic in member.topics:
                by_topic.setdefault(topic, []).append((member_id, member))
        for topic, subscribers in sorted(by_topic.items()):
            for p in range(len(self._partitions(topic))):
                _, owner = subscribers[p % len(subscribers)]
                tp = TopicPartition(topic, p)
                owner._assigned[tp] = state.committed.get(tp, 0)
        self._lock.notify_all()

    def _commit(self, consumer: MemoryConsumer, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            state = self._groups[consumer.group]
            for tp, offset in offsets.items():
                if tp not in consumer._assigned:
                    msg = f"partition {tp} is not assigned to this member (rebalanced); commit refused"
                    raise CommitFailedError(msg)
                state.committed[tp] = offset

    def lag(self, group: str) -> int:
        """Messages the group's members have not yet polled (0 once every member has caught up)."""
        with self._lock:
            state = self._groups.get(group)
            if state is None:
                return 0
            total = 0
            for member in state.members.values():
                for tp, position in member._assigned.items():
                    total += len(self._partitions(tp.topic)[tp.partition]) - position
            return total

    def committed(self, group: str, tp: TopicPartition) -> int | None:
        with self._lock:
            state = self._groups.get(group)
            return None if state is None else state.committed.get(tp)


class MemoryProducer(Producer):
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._closed = False

    def send(self, topic: str, value: bytes, key: bytes | str | None = None, headers: Headers = None) -> None:
        if self._closed:
            msg = "producer is closed"
            raise BusError(msg)
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        self._bus._append(topic, key_bytes, value, normalize_headers(headers))

    def flush(self, timeout: float | None = None) -> None:
        """Sends are synchronous in memory; nothing to wait for."""

    def close(self) -> None:
        self._closed = True


class MemoryConsumer(Consumer):
    def __init__(self, bus: MemoryBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self.topics = topics
        self.group = group
        self._assigned: dict[TopicPartition, int] = {}
        self._closed = False
        self.member_id = bus._join(self)

    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        deadline = time.monotonic() + timeout
        with self._bus._lock:
            while True:
                if self._closed:
                    return []
                batch = self._take(max_records)
                if batch:
                    return batch
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._bus._lock.wait(remaining)

    def _take(self, max_records: int) -> list[Message]:
        batch: list[Message] = []
        for tp in sorted(self._assigned, key=lambda t: (t.topic, t.partition)):
            log_ = self._bus._partitions(tp.topic)[tp.partition]
            position = self._assigned[tp]
            take = log_[position : position + (max_records - len(batch))]
            if take:
                batch.extend(take)
                self._assigned[tp] = position + len(take)
            if len(batch) >= max_records:
                break
        return batch

    def commit(self, messages: Iterable[Message] | None = None) -> None:
        if messages is None:
            offsets = dict(self._assigned)
        else:
            offsets = {}
            for m in messages:
                offsets[m.tp] = max(offsets.get(m.tp, 0), m.offset + 1)
        if offsets:
            self._bus._commit(self, offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        with self._bus._lock:
            if tp not in self._assigned:
                msg = f"cannot seek {tp}: not assigned to this member"
                raise BusError(msg)
            self._assigned[tp] = max(0, offset)

    def assignment(self) -> set[TopicPartition]:
        with self._bus._lock:
            return set(self._assigned)

    def committed(self, tp: TopicPartition) -> int | None:
        return self._bus.committed(self.group, tp)

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        with self._bus._lock:
            return {tp: len(self._bus._partitions(tp.topic)[tp.partition]) for tp in tps}

    def caught_up(self, tp: TopicPartition) -> bool:
        with self._bus._lock:
            position = self._assigned.get(tp)
            return position is not None and position >= len(self._bus._partitions(tp.topic)[tp.partition])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._leave(self)
