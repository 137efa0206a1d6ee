"""One contract for every bus backend: the in-memory bus and Kafka (the real broker).

Each test runs twice, once per backend; Kafka runs use a unique topic prefix and group.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pipeline.bus import Bus, Consumer, Message, TopicPartition, TopicSpec, open_bus, partition_for
from pipeline.bus.base import DLQ_SUFFIX, HEADER_DLQ_OFFSET, HEADER_DLQ_REASON, HEADER_DLQ_TOPIC
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.store.local import LocalStore

PARTITIONS = 3


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def bus(request: pytest.FixtureRequest, unique_name: str) -> Iterator[Bus]:
    if request.param == "memory":
        yield MemoryBus(default_partitions=PARTITIONS)
        return
    real = request.getfixturevalue("real_stack")
    b = open_bus(real.with_prefix(unique_name))
    yield b
    b.close()


def consume(consumer: Consumer, count: int, timeout: float = 30.0) -> list[Message]:
    """Poll until ``count`` messages arrived (or fail after ``timeout`` s)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(consumer.poll(timeout=0.5))
    assert len(got) >= count, f"expected {count} messages within {timeout} s, got {len(got)}"
    return got


def drain(consumer: Consumer, quiet_s: float = 2.0) -> list[Message]:
    """Everything that arrives until nothing came for ``quiet_s`` seconds."""
    got: list[Message] = []
    while batch := consumer.poll(timeout=quiet_s):
        got.extend(batch)
    return got


def produce(bus: Bus, topic: str, items: list[tuple[str, bytes]], headers: dict[str, str] | None = None) -> None:
    with bus.producer() as producer:
        for key, value in items:
            producer.send(topic, value, key=key, headers=headers)
        producer.flush()


def test_roundtrip_keeps_key_value_headers_and_partitions_by_key(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("frames", PARTITIONS)])
    items = [(f"cam-{i % 5}", f"value-{i}".encode()) for i in range(20)]
    produce(bus, "frames", items, headers={"tubeline-camera-id": "x", "trace": "é"})
    with bus.consumer(["frames"], "g1") as consumer:
        got = consume(consumer, 20)
    assert sorted(m.value for m in got) == sorted(v for _, v in items)
    for m in got:
        assert m.topic == "frames"
        assert m.partition == partition_for(m.key, PARTITIONS)
        assert m.header_str("trace") == "é"
        assert m.header("tubeline-camera-id") == b"x"


def test_messages_of_one_key_arrive_in_order(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("ordered", PARTITIONS)])
    items = [(f"cam-{i % 2}", str(i).encode()) for i in range(60)]
    produce(bus, "ordered", items)
    with bus.consumer(["ordered"], "g1") as consumer:
        got = consume(consumer, 60)
    for cam in ("cam-0", "cam-1"):
        seq = [int(m.value) for m in got if m.key == cam.encode()]
        assert seq == sorted(seq) and len(seq) == 30


def test_uncommitted_messages_are_delivered_again(bus: Bus) -> None:
    """At-least-once: a member that leaves before committing hands its messages to the next one."""
    bus.ensure_topics([TopicSpec("alo", PARTITIONS)])
    produce(bus, "alo", [("cam-1", b"a"), ("cam-1", b"b"), ("cam-2", b"c")])
    first = bus.consumer(["alo"], "g1")
    assert {m.value for m in consume(first, 3)} == {b"a", b"b", b"c"}
    first.close()  # no commit
    with bus.consumer(["alo"], "g1") as second:
        again = consume(second, 3)
    assert sorted(m.value for m in again) == [b"a", b"b", b"c"]


def test_committed_messages_are_not_delivered_again(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("committed", PARTITIONS)])
    produce(bus, "committed", [("cam-1", b"old-1"), ("cam-2", b"old-2")])
    with bus.consumer(["committed"], "g1") as first:
        got = consume(first, 2)
        first.commit(got)
        for m in got:
            assert first.committed(m.tp) == m.offset + 1
    produce(bus, "committed", [("cam-1", b"new")])
    with bus.consumer(["committed"], "g1") as second:
        rest = consume(second, 1)
        rest += drain(second, quiet_s=1.5)
    assert [m.value for m in rest] == [b"new"]


def test_partial_commit_redelivers_only_the_rest(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("partial", 1)])
    produce(bus, "partial", [("k", str(i).encode()) for i in range(5)])
    with bus.consumer(["partial"], "g1") as first:
        got = consume(first, 5)
        first.commit(got[:2])
    with bus.consumer(["partial"], "g1") as second:
        again = consume(second, 3)
    assert [m.value for m in again] == [b"2", b"3", b"4"]


def test_seek_rereads_from_an_offset(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("seek", 1)])
    produce(bus, "seek", [("k", str(i).encode()) for i in range(4)])
    with bus.consumer(["seek"], "g1") as consumer:
        consume(consumer, 4)
        consumer.seek(TopicPartition("seek", 0), 1)
        again = consume(consumer, 3)
    assert [m.value for m in again] == [b"1", b"2", b"3"]


def test_each_group_gets_every_message(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("fanout", PARTITIONS)])
    produce(bus, "fanout", [(f"cam-{i}", str(i).encode()) for i in range(9)])
    with bus.consumer(["fanout"], "detect") as a, bus.consumer(["fanout"], "rules") as b:
        assert len(consume(a, 9)) == 9
        assert len(consume(b, 9)) == 9


def test_group_members_split_partitions_and_take_over_on_leave(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("scale", PARTITIONS)])
    keys = [f"cam-{i}" for i in range(12)]
    assert len({partition_for(k.encode(), PARTITIONS) for k in keys}) == PARTITIONS
    produce(bus, "scale", [(k, k.encode()) for k in keys])
    a = bus.consumer(["scale"], "workers")
    b = bus.consumer(["scale"], "workers")
    try:
        seen_a: list[Message] = []
        seen_b: list[Message] = []
        deadline = time.monotonic() + 40
        while len(seen_a) + len(seen_b) < 12 and time.monotonic() < deadline:
            seen_a += a.poll(timeout=0.3)
            seen_b += b.poll(timeout=0.3)
        assert len(seen_a) + len(seen_b) == 12
        assert a.assignment().isdisjoint(b.assignment())
        assert a.assignment() | b.assignment() == {TopicPartition("scale", p) for p in range(PARTITIONS)}
        b.commit(seen_b)
        a.close()  # leaves without committing: b must receive a's messages again
        taken_over = consume(b, len(seen_a), timeout=40)
        assert sorted(m.value for m in taken_over) == sorted(m.value for m in seen_a)
    finally:
        b.close()


def test_four_mib_message_round_trips(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("big", 1)])
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    produce(bus, "big", [("cam-1", payload)])
    with bus.consumer(["big"], "g1") as consumer:
        (message,) = consume(consumer, 1)
    assert message.value == payload


def test_malformed_message_goes_to_dead_letter_with_original_bytes(bus: Bus, tmp_path, unique_name: str) -> None:
    """A worker meeting a bad message sends it, unchanged, to <topic>.dlq with the reason, and commits."""
    from schemas.topics import DETECTIONS
    from workers.rules.worker import RulesWorker

    bus.ensure_topics([TopicSpec(DETECTIONS.name, PARTITIONS), TopicSpec(DETECTIONS.name + DLQ_SUFFIX, 1)])
    garbage = b"\x00not json\xff" * 10
    produce(bus, DETECTIONS.name, [("cam-7", garbage)], headers={"tubeline-camera-id": "cam-7"})
    config = TubelineConfig()
    worker = RulesWorker(config, bus=bus, store=LocalStore(tmp_path / "store"))
    worker.setup()
    try:
        deadline = time.monotonic() + 30
        while worker.processed < 1 and time.monotonic() < deadline:
            worker.step()
    finally:
        worker.teardown()
    assert worker.processed == 1 and worker.dead_letter is not None and worker.dead_letter.count == 1
    with bus.consumer([DETECTIONS.name + DLQ_SUFFIX], "dlq-reader") as consumer:
        (dead,) = consume(consumer, 1)
    assert dead.value == garbage
    assert dead.key == b"cam-7"
    assert dead.header("tubeline-camera-id") == b"cam-7"
    assert dead.header_str(HEADER_DLQ_TOPIC) == DETECTIONS.name
    assert dead.header_str(HEADER_DLQ_OFFSET) == "0"
    assert f"invalid {DETECTIONS.name} message" in dead.header_str(HEADER_DLQ_REASON)
    # The bad message was committed: the group does not see it again.
    with bus.consumer([DETECTIONS.name], RulesWorker.group) as again:
        assert drain(again, quiet_s=1.5) == []


def test_a_member_knows_whether_it_has_read_a_partition_to_its_end(bus: Bus) -> None:
    """``caught_up``: False while messages of the partition wait for this member (Kafka: known from the last
    fetch's high-water mark), True once it has been handed all of them."""
    bus.ensure_topics([TopicSpec("backlog", 1)])
    produce(bus, "backlog", [("cam", str(i).encode()) for i in range(30)])
    tp = TopicPartition("backlog", 0)
    with bus.consumer(["backlog"], "g1") as consumer:
        got = consumer.poll(timeout=10.0, max_records=1)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = consumer.poll(timeout=1.0, max_records=1)
        assert len(got) == 1 and tp in consumer.assignment()
        assert not consumer.caught_up(tp)
        got += consume(consumer, 29)
        assert len(got) == 30 and consumer.caught_up(tp)
        produce(bus, "backlog", [("cam", b"late")])
        assert [m.value for m in consume(consumer, 1)] == [b"late"] and consumer.caught_up(tp)


def test_end_offsets_are_the_next_offset_of_each_partition(bus: Bus) -> None:
    bus.ensure_topics([TopicSpec("ends", PARTITIONS)])
    items = [(f"cam-{i % 4}", str(i).encode()) for i in range(17)]
    produce(bus, "ends", items)
    with bus.consumer(["ends"], "g-ends") as consumer:
        got = consume(consumer, 17)
        ends = consumer.end_offsets(consumer.assignment())
    assert set(ends) == {TopicPartition("ends", p) for p in range(PARTITIONS)}
    for tp, end in ends.items():
        offsets = sorted(m.offset for m in got if m.partition == tp.partition)
        assert end == 1 + max(offsets, default=-1), (tp, end, offsets, ends)
