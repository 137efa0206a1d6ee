"""The rules worker over the in-memory bus: detections and status in, alerts out; redelivery raises the
same alert IDs; bad input is dead-lettered; offline timers fire on the wall clock when caught up; the
operator's tail filters, de-duplicates and follows."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.alerts import TailFilter, follow
from pipeline.bus import Bus, Message
from pipeline.bus.base import DLQ_SUFFIX, HEADER_DLQ_REASON
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.rules import RulesConfig
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.cameras import CameraStatus
from schemas.detections import DetectedObject, Detections
from schemas.topics import ALERTS, CAMERA_STATUS, DETECTIONS
from tests.contract.test_bus_contract import consume, drain, produce
from workers.rules.worker import RulesWorker

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
RULES = RulesConfig.model_validate({"cameras": [
    {
        "camera_id": "cam-01",
        "zones": [{"id": "yard", "name": "Yard", "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}],
        "lines": [{"id": "gate", "a": [0.2, 0.5], "b": [0.8, 0.5]}],
        "rules": [
            {"id": "yard-intrusion", "kind": "zone_intrusion", "zone": "yard", "classes": ["person"],
             "severity": "high"},
            {"id": "gate-in", "kind": "line_crossing", "line": "gate", "direction": "a_to_b"},
        ],
    },
    {"camera_id": "*", "rules": [{"id": "offline", "kind": "camera_offline", "grace_s": 30}]},
]})


def frame(camera: str, seq: int, x: float, y: float, cls: str = "person") -> Detections:
    box = (x * 640 - 10, y * 480 - 50, x * 640 + 10, y * 480)
    return Detections(
        camera_id=camera, session="s1", sequence=seq, captured_at=T0 + timedelta(seconds=seq), frame_width=640,
        frame_height=480, model_id="test@1",
        objects=(DetectedObject(box=box, class_name=cls, class_id=0, score=0.8, track_id=f"{camera}:s1:7"),),
    )


def walk(camera: str = "cam-01") -> list[Detections]:
    """Crosses the gate line downwards at frame 2, enters the yard at frame 3."""
    points = [(0.4, 0.3), (0.4, 0.45), (0.4, 0.6), (0.7, 0.7), (0.8, 0.8)]
    return [frame(camera, i, x, y) for i, (x, y) in enumerate(points)]


def publish(bus: Bus, messages: list[Detections | CameraStatus]) -> None:
    items = [(m.camera_id, m.to_json()) for m in messages]
    with bus.producer() as producer:
        for (key, value), m in zip(items, messages, strict=True):
            producer.send(DETECTIONS.name if isinstance(m, Detections) else CAMERA_STATUS.name, value, key=key)
        producer.flush()


def run_until(worker: RulesWorker, processed: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while worker.processed < processed and time.monotonic() < deadline:
        worker.step()
    assert worker.processed >= processed, f"processed {worker.processed} of {processed}"


def read_alerts(bus: Bus, count: int) -> list[Message]:
    with bus.consumer([ALERTS.name], "reader") as consumer:
        got = consume(consumer, count, timeout=5)
        got += drain(consumer, quiet_s=0.3)
    return got


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(default_partitions=3)


def make_worker(bus: Bus, tmp_path: Path, **kwargs: object) -> RulesWorker:
    return RulesWorker(TubelineConfig(), bus=bus, store=LocalStore(tmp_path / "store"), rules=RULES, **kwargs)


def test_detections_in_alerts_out_keyed_by_camera(bus: MemoryBus, tmp_path: Path) -> None:
    worker = make_worker(bus, tmp_path)
    worker.setup()
    try:
        publish(bus, [*walk(), *walk("cam-02")])  # cam-02 has no zone rules: nothing
        run_until(worker, 10)
    finally:
        worker.teardown()
    messages = read_alerts(bus, 2)
    alerts = [Alert.from_json(m.value) for m in messages]
    assert [(a.alert_type, a.rule_id, a.occurred_at) for a in alerts] == [
        ("line_crossing", "gate-in", T0 + timedelta(seconds=2)),
        ("zone_intrusion", "yard-intrusion", T0 + timedelta(seconds=3)),
    ]
    assert all(m.key == b"cam-01" for m in messages)
    assert alerts[1].severity == "high" and alerts[1].track_id == "cam-01:s1:7"
    assert worker.alerts_sent == 2


def test_redelivery_raises_identical_alert_ids(bus: MemoryBus, tmp_path: Path) -> None:
    """A worker that produced its alerts but died before committing: the next one raises the same IDs."""
    publish(bus, walk())
    first = make_worker(bus, tmp_path)
    first.setup()
    assert first.consumer is not None and first.producer is not None
    batch = consume(first.consumer, 5, timeout=5)
    first.handle(batch)
    first.producer.flush()
    first.teardown()  # crash before commit: no offsets committed
    second = make_worker(bus, tmp_path)
    second.setup()
    try:
        run_until(second, 5)
    finally:
        second.teardown()
    alerts = [Alert.from_json(m.value) for m in read_alerts(bus, 4)]
    assert len(alerts) == 4
    ids = [a.alert_id for a in alerts]
    assert ids[:2] == ids[2:] and ids[0] != ids[1]
    assert alerts[:2] == alerts[2:]  # byte-for-byte the same alerts


def test_a_restarted_worker_continues_from_the_saved_state(bus: MemoryBus, tmp_path: Path) -> None:
    """Killed after a checkpoint (frames 0-3: the crossing and the intrusion are out) and one more frame: the
    next worker loads the camera's state and raises nothing new for the track already in the yard — without
    the state it would see the track for the first time inside the yard and raise a second intrusion."""
    publish(bus, walk())
    first = make_worker(bus, tmp_path)
    first.setup()
    assert first.consumer is not None and first.producer is not None
    batch = consume(first.consumer, 5, timeout=5)
    first.handle(batch[:4])
    first.producer.flush()
    first.pending.extend(batch[:4])
    first.checkpoint()  # state saved, offsets of frames 0-3 committed
    first.handle(batch[4:])
    first.producer.flush()
    first.teardown()  # killed before the next checkpoint
    assert LocalStore(tmp_path / "store").exists(f"state/rules/cam-01/{DETECTIONS.name}.json")
    second = make_worker(bus, tmp_path)
    second.setup()
    try:
        deadline = time.monotonic() + 10
        while not second.pending and time.monotonic() < deadline:
            second.step()
        second.checkpoint()
    finally:
        second.teardown()
    assert len(second.pending) == 0 and second.processed == 1  # frame 4 came again, nothing else
    alerts = [Alert.from_json(m.value) for m in read_alerts(bus, 2)]
    assert [(a.rule_id, a.occurred_at) for a in alerts] == [
        ("gate-in", T0 + timedelta(seconds=2)), ("yard-intrusion", T0 + timedelta(seconds=3))]


def test_invalid_messages_go_to_the_dead_letter_topic(bus: MemoryBus, tmp_path: Path) -> None:
    worker = make_worker(bus, tmp_path)
    worker.setup()
    try:
        produce(bus, DETECTIONS.name, [("cam-01", b'{"type": "detections"}')])
        produce(bus, CAMERA_STATUS.name, [("cam-01", b"not json")])
        publish(bus, walk())
        run_until(worker, 7)
    finally:
        worker.teardown()
    assert worker.dead_letter is not None and worker.dead_letter.count == 2
    with bus.consumer([DETECTIONS.name + DLQ_SUFFIX, CAMERA_STATUS.name + DLQ_SUFFIX], "dlq") as consumer:
        dead = consume(consumer, 2, timeout=5)
    assert {m.value for m in dead} == {b'{"type": "detections"}', b"not json"}
    assert all("invalid" in m.header_str(HEADER_DLQ_REASON) for m in dead)
    assert len(read_alerts(bus, 2)) == 2  # the good messages still raised their alerts


def test_offline_timer_fires_on_the_wall_clock_when_caught_up(bus: MemoryBus, tmp_path: Path) -> None:
    now = [T0]
    worker = make_worker(bus, tmp_path, clock=lambda: now[0])
    worker.setup()
    try:
        publish(bus, [CameraStatus(camera_id="cam-09", observed_at=T0, event="offline", reason="network")])
        run_until(worker, 1)
        now[0] = T0 + timedelta(seconds=29)
        worker.step()  # nothing to read: idle, still within grace
        assert worker.alerts_sent == 0
        now[0] = T0 + timedelta(seconds=45)
        worker.step()
        assert worker.alerts_sent == 1
    finally:
        worker.teardown()
    (message,) = read_alerts(bus, 1)
    alert = Alert.from_json(message.value)
    assert alert.alert_type == "camera_offline" and alert.camera_id == "cam-09" and message.key == b"cam-09"
    assert alert.occurred_at == T0 + timedelta(seconds=30)


def _alert(alert_id: str, camera: str, kind: str, at: datetime) -> Alert:
    return Alert(alert_id=alert_id, alert_type=kind, camera_id=camera, occurred_at=at, severity="low",
                 rule_id="r", message=f"{kind} on {camera}")


def test_tail_filters_deduplicates_and_follows(bus: MemoryBus) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(hours=1)
    history = [_alert("a-old", "cam-01", "crowding", old)]
    live = [
        _alert("a-1", "cam-01", "crowding", now),
        _alert("a-1", "cam-01", "crowding", now),  # at-least-once repeat
        _alert("a-2", "cam-02", "crowding", now),
        _alert("a-3", "cam-01", "zone_intrusion", now),
        _alert("a-4", "cam-01", "crowding", now + timedelta(seconds=1)),
    ]
    produce(bus, ALERTS.name, [(a.camera_id, a.to_json()) for a in history])
    time.sleep(0.05)  # the history's record timestamps are before the tail starts
    shown: list[str] = []
    stop = threading.Event()

    def show(alert: Alert) -> None:
        shown.append(alert.alert_id)
        if alert.alert_id == "a-4":
            stop.set()

    where = TailFilter(cameras={"cam-01"}, types={"crowding"}, since=datetime.now(UTC))
    thread = threading.Thread(target=follow, args=(bus, show, stop), kwargs={"where": where, "poll_timeout_s": 0.1})
    thread.start()
    produce(bus, ALERTS.name, [(a.camera_id, a.to_json()) for a in live])
    thread.join(10)
    assert not thread.is_alive()
    assert shown == ["a-1", "a-4"]
    everything: list[str] = []
    stop_all = threading.Event()
    threading.Timer(1.0, stop_all.set).start()
    assert follow(bus, lambda a: everything.append(a.alert_id), stop_all, poll_timeout_s=0.1) == 5
    assert sorted(everything) == ["a-1", "a-2", "a-3", "a-4", "a-old"]


def test_worker_reads_the_rules_section_of_the_config_tree(bus: MemoryBus, tmp_path: Path) -> None:
    """Once the tree mounts ``rules: RulesConfig``, ``tubeline worker rules`` picks it up from there."""
    from pydantic import Field

    class Mounted(TubelineConfig):
        rules: RulesConfig = Field(default_factory=RulesConfig, title="Rules", description="Rules worker.")

    cfg = Mounted.model_validate({"rules": RULES.model_dump(mode="json")})
    worker = RulesWorker(cfg, bus=bus, store=LocalStore(tmp_path / "store"))
    assert worker.rules == RULES
    bare = RulesWorker(TubelineConfig(), bus=bus, store=LocalStore(tmp_path / "store"))
    assert bare.rules.cameras == []
