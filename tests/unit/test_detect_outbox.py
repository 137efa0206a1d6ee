"""Asynchronous crop writes: outputs leave in queue order, a crop's announcement never before its object is
stored, a failed write surfaces and keeps its message, and ``drain`` leaves nothing behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.store.local import LocalStore
from workers.detect.outbox import Outbox


class GatedStore(LocalStore):
    """A local store whose writes wait for the test to open a gate (one per key)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gates: dict[str, threading.Event] = {}

    def put(self, key: str, data, **kwargs):  # noqa: ANN001, ANN003, ANN201
        gate = self.gates.setdefault(key, threading.Event())
        assert gate.wait(5), f"gate for {key} never opened"
        if data == b"boom":
            msg = "store refused the write"
            raise OSError(msg)
        return super().put(key, data, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> GatedStore:
    return GatedStore(tmp_path / "s")


def test_announcement_waits_for_its_object_and_order_holds(store: GatedStore) -> None:
    sent: list[tuple[str, bytes]] = []
    seen_stored: list[bool] = []

    def send(topic: str, key: str, value: bytes) -> None:
        if topic == "objects":
            seen_stored.append(store.exists(value.decode()))
        sent.append((topic, value))

    outbox = Outbox(store, send, threads=2)
    outbox.send("detections", "cam", b"d1")  # nothing pending: leaves at once
    assert sent == [("detections", b"d1")]
    store.gates["a.jpg"], store.gates["b.jpg"] = threading.Event(), threading.Event()
    outbox.put_then_send("a.jpg", b"A", "image/jpeg", {}, "objects", "cam", b"a.jpg")
    outbox.send("detections", "cam", b"d2")
    outbox.put_then_send("b.jpg", b"B", "image/jpeg", {}, "objects", "cam", b"b.jpg")
    store.gates["b.jpg"].set()  # the later write finishes first ...
    outbox.pump()
    assert sent == [("detections", b"d1")]  # ... but nothing overtakes the first crop
    store.gates["a.jpg"].set()
    outbox.drain()
    assert [v for _, v in sent] == [b"d1", b"a.jpg", b"d2", b"b.jpg"]
    assert seen_stored == [True, True]
    assert len(outbox) == 0 and outbox.stored == 2
    outbox.close()


def test_failed_write_raises_and_keeps_its_message(store: GatedStore) -> None:
    sent: list[bytes] = []
    outbox = Outbox(store, lambda t, k, v: sent.append(v), threads=1)
    store.gates["bad.jpg"] = threading.Event()
    store.gates["bad.jpg"].set()
    with pytest.raises(OSError, match="refused"):  # from put_then_send's pump or from drain, whichever sees it
        outbox.put_then_send("bad.jpg", b"boom", "image/jpeg", {}, "objects", "cam", b"bad")
        outbox.drain()
    assert sent == [] and len(outbox) == 1


def test_inline_mode_writes_before_sending(store: GatedStore) -> None:
    order: list[str] = []
    store.gates["c.jpg"] = threading.Event()
    store.gates["c.jpg"].set()
    outbox = Outbox(store, lambda t, k, v: order.append("sent" if store.exists("c.jpg") else "sent-early"), threads=0)
    outbox.put_then_send("c.jpg", b"C", "image/jpeg", {}, "objects", "cam", b"c")
    assert order == ["sent"]


def test_behind_a_spool_a_crop_written_during_an_outage_is_announced_once_it_is_stored(tmp_path: Path) -> None:
    """A deployed detect worker writes through its spool: a crop spooled during an outage travels with its
    announcement, which leaves only when the spool has stored the crop."""
    from pipeline.bus.memory import MemoryBus
    from tests.unit.test_spool import FlakyStore, _eventually, _spooled

    remote = FlakyStore(tmp_path / "remote")
    spooled = _spooled(tmp_path, remote)
    bus = MemoryBus()
    producer = bus.producer()
    spooled.bind_producer(producer)
    spooled.start()
    consumer = bus.consumer(["objects"], group="t")
    sent: list[bytes] = []
    outbox = Outbox(spooled, lambda topic, key, value: sent.append(value), threads=2)
    try:
        remote.down.set()
        outbox.put_then_send("crops/a.jpg", b"A", "image/jpeg", {}, "objects", "cam", b"crops/a.jpg")
        outbox.drain()  # the write was spooled: nothing for the outbox itself to send
        assert sent == [] and not remote.inner.exists("crops/a.jpg")
        time.sleep(0.3)
        producer.flush()
        assert consumer.poll(timeout=0.2, max_records=10) == []  # not announced while the crop is not stored
        remote.down.clear()
        _eventually(lambda: remote.inner.exists("crops/a.jpg"))
        producer.flush()
        _eventually(lambda: any(m.value == b"crops/a.jpg" for m in consumer.poll(timeout=0.1, max_records=10)))
    finally:
        outbox.close()
        spooled.stop()
