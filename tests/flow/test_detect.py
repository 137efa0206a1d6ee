"""The detect worker over the in-memory bus: detections per frame, crops, track summaries, dead letters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipeline.bus import DeadLetter, TopicSpec
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.store.local import LocalStore
from schemas.detections import Detections as DetectionsMessage
from schemas.objects import ObjectCrop
from schemas.topics import DETECTIONS, FRAMES, OBJECTS, TRACKS
from schemas.tracks import TrackSummary
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import publish_frames, run_until, sample_frames
from workers.detect.worker import DetectWorker


@pytest.fixture(scope="module")
def detector():
    from models.zoo import ModelZoo

    return ModelZoo(TubelineConfig().models).detector()


def test_detect_worker_tracks_people_and_summarises_every_track(detector, testdata: Path, tmp_path: Path) -> None:
    bus = MemoryBus(default_partitions=3)
    store = LocalStore(tmp_path / "store")
    publish_frames(bus, "cam-a", "sessA", sample_frames(testdata / "vtest.avi", 50))
    publish_frames(bus, "cam-b", "sessB", sample_frames(testdata / "vtest.avi", 25, start=400))
    worker = DetectWorker(TubelineConfig(), bus=bus, store=store, detector=detector, close_on_stop=True)
    run_until(worker, 75)

    with bus.consumer([DETECTIONS.name], "check") as c:
        detections = [DetectionsMessage.from_json(m.value) for m in drain(c, 0.5)]
    frames = Counter((d.camera_id, d.sequence) for d in detections)
    assert set(frames) == {("cam-a", i) for i in range(50)} | {("cam-b", i) for i in range(25)}
    assert max(frames.values()) == 1
    people = [o for d in detections for o in d.objects if o.class_name == "person"]
    assert len(people) > 100  # vtest shows several people in every frame
    tracked = [o for o in people if o.track_id]
    assert len(tracked) > 0.6 * len(people)
    assert all(o.track_id.startswith(("cam-a:sessA.0:", "cam-b:sessB.0:")) for o in tracked)

    with bus.consumer([TRACKS.name], "check") as c:
        summaries = [TrackSummary.from_json(m.value) for m in drain(c, 0.5)]
    ids_in_frames = {o.track_id for d in detections for o in d.objects if o.track_id}
    assert {s.track_id for s in summaries} == ids_in_frames  # every track ends with exactly one summary
    assert len({s.idempotency_key() for s in summaries}) == len(summaries)
    for s in summaries:
        assert s.closed_reason in ("lost", "shutdown")
        assert s.path and s.ended_at >= s.started_at
        if s.best_crop_key:
            assert store.get(s.best_crop_key)[:3] == b"\xff\xd8\xff"
    assert any(s.colour != "unknown" for s in summaries)

    with bus.consumer([OBJECTS.name], "check") as c:
        crops = [ObjectCrop.from_json(m.value) for m in drain(c, 0.5)]
    assert crops, "tracks of people must yield crops for the face worker"
    per_track = Counter(c.track_id for c in crops)
    assert max(per_track.values()) <= TubelineConfig().detect.max_crops_per_track
    for crop in crops:
        assert store.exists(crop.crop_key)
        assert crop.track_id in ids_in_frames


def test_undecodable_frame_goes_to_dead_letter(detector, tmp_path: Path) -> None:
    bus = MemoryBus()
    bus.ensure_topics([TopicSpec(FRAMES.name, 1)])
    with bus.producer() as p:
        p.send(FRAMES.name, b"\xff\xd8\xffgarbage", key="cam-x",
               headers=[("tubeline-camera-id", b"cam-x")])
    worker = DetectWorker(TubelineConfig(), bus=bus, store=LocalStore(tmp_path / "s"), detector=detector)
    run_until(worker, 1)
    assert isinstance(worker.dead_letter, DeadLetter) and worker.dead_letter.count == 1
    with bus.consumer([FRAMES.name + ".dlq"], "check") as c:
        (dead,) = drain(c, 0.5)
    assert dead.value == b"\xff\xd8\xffgarbage"
    assert "invalid frame headers" in dead.header_str("tubeline-dlq-reason")
