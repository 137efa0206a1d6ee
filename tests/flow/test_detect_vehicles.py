"""The detect worker on the enrichment plates video (tests/fixtures/enrich/make_videos.py: four real cars
composited onto vtest.avi, each driving towards the camera for 4.5 s) over the in-memory bus: one track per
vehicle, and crops that follow the vehicle as it grows (docs/detect.md).

NanoDet boxes these cars as car *and* truck in about a quarter of their frames; without cross-class
suppression the second box starts a second track on the same car (the first test shows that this still
happens, so the second one means something)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.core import box_iou
from pipeline.store.local import LocalStore
from schemas.detections import DetectedObject
from schemas.detections import Detections as DetectionsMessage
from schemas.objects import ObjectCrop
from schemas.topics import DETECTIONS, OBJECTS
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import publish_frames, run_until
from tests.fixtures.enrich.make_videos import FPS, PLATE_ACTORS, TESTDATA, Actor, Sprite, make_plate_video
from workers.detect.worker import DetectWorker

VEHICLES = {"car", "truck", "bus"}


@pytest.fixture(scope="module")
def detector():
    from models.zoo import ModelZoo

    return ModelZoo(TubelineConfig().models).detector()


@pytest.fixture(scope="module")
def plate_frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    path = tmp_path_factory.mktemp("vehicles") / "plates.mp4"
    make_plate_video(path)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    return frames


def pasted_box(actor: Actor, sprite: Sprite, index: int) -> np.ndarray:
    """Where make_videos.place() put the car's cut-out in frame ``index`` (x1, y1, x2, y2)."""
    t = (index - actor.first) / max(1, actor.frames - 1)
    width = actor.width[0] + t * (actor.width[1] - actor.width[0])
    x1, y1, x2, y2 = sprite.region
    height = width * (y2 - y1) / (x2 - x1)
    cx = actor.start[0] + t * (actor.end[0] - actor.start[0])
    bottom = actor.start[1] + t * (actor.end[1] - actor.start[1])
    return np.array([cx - width / 2, bottom - height, cx + width / 2, bottom])


def run_detect(frames: list[np.ndarray], detector, tmp: Path, **detect: object):  # noqa: ANN001, ANN201
    config = with_overrides(TubelineConfig(), {f"detect.{k}": v for k, v in detect.items()})
    bus, store = MemoryBus(default_partitions=1), LocalStore(tmp / "store")
    publish_frames(bus, "cam-v", "sessV", frames, fps=FPS)
    run_until(DetectWorker(config, bus=bus, store=store, detector=detector, close_on_stop=True), len(frames))
    with bus.consumer([DETECTIONS.name], "check") as c:
        detections = sorted((DetectionsMessage.from_json(m.value) for m in drain(c, 0.5)), key=lambda d: d.sequence)
    with bus.consumer([OBJECTS.name], "check") as c:
        crops = [ObjectCrop.from_json(m.value) for m in drain(c, 0.5)]
    return config, detections, crops


def boxes_on_vehicles(detections: list[DetectionsMessage]) -> dict[str, list[tuple[int, DetectedObject]]]:
    """Per vehicle of the video: (frame, box) for every vehicle box overlapping where it was pasted (IoU > 0.5)."""
    out: dict[str, list[tuple[int, DetectedObject]]] = defaultdict(list)
    for message in detections:
        boxes = [o for o in message.objects if o.class_name in VEHICLES]
        for actor, sprite, *_ in PLATE_ACTORS:
            if not boxes or not actor.first <= message.sequence < actor.first + actor.frames:
                continue
            iou = box_iou(pasted_box(actor, sprite, message.sequence)[None], np.array([o.box for o in boxes]))[0]
            out[actor.name] += [(message.sequence, o) for o, v in zip(boxes, iou, strict=True) if v > 0.5]
    return out


def duplicates(detections: list[DetectionsMessage], min_iou: float = 0.7) -> int:
    """Frames × vehicles where two boxes on the vehicle overlap each other at ``min_iou`` or more (one car seen
    twice; a looser second box around it, which the detector's NMS also leaves, is not counted)."""
    count = 0
    for seen in boxes_on_vehicles(detections).values():
        for frame in {f for f, _ in seen}:
            boxes = np.array([o.box for f, o in seen if f == frame])
            iou = box_iou(boxes, boxes)
            count += int(((iou >= min_iou) & ~np.eye(len(boxes), dtype=bool)).any())
    return count


def tracks_per_vehicle(detections: list[DetectionsMessage]) -> dict[str, set[str]]:
    return {name: {o.track_id for _, o in seen if o.track_id} for name, seen in boxes_on_vehicles(detections).items()}


def test_without_suppression_a_car_gets_two_tracks(plate_frames: list[np.ndarray], detector, tmp_path: Path) -> None:  # noqa: ANN001
    _, detections, _ = run_detect(plate_frames, detector, tmp_path, suppress_iou=None)
    assert duplicates(detections) >= 20, "the video no longer shows NanoDet's car+truck duplicates"
    assert max(len(ids) for ids in tracks_per_vehicle(detections).values()) >= 2


def test_one_track_per_vehicle_and_crops_that_follow_it(plate_frames: list[np.ndarray], detector,  # noqa: ANN001
                                                        tmp_path: Path) -> None:
    config, detections, crops = run_detect(plate_frames, detector, tmp_path)
    on_vehicles = boxes_on_vehicles(detections)
    assert sorted(on_vehicles) == sorted(actor.name for actor, *_ in PLATE_ACTORS)
    assert duplicates(detections) == 0
    tracks = tracks_per_vehicle(detections)
    assert {name: len(ids) for name, ids in tracks.items()} == {name: 1 for name in tracks}
    assert len(set().union(*tracks.values())) == len(PLATE_ACTORS)

    crops_of: dict[str, list[ObjectCrop]] = defaultdict(list)
    for crop in crops:
        crops_of[crop.track_id].append(crop)
    for name, (track,) in tracks.items():
        mine = [o for _, o in on_vehicles[name] if o.track_id == track]
        assert len(mine) >= 20, f"{name}: tracked in only {len(mine)} frames"
        assert len({o.class_name for o in mine}) == 1, f"{name}: class flickers {[o.class_name for o in mine]}"
        assert 1 <= len(crops_of[track]) <= config.detect.max_crops_per_track
        largest = max(_side(o.box) for o in mine)
        best = max(_side(c.box) for c in crops_of[track])
        # before: the first view only, as small as 0.76 of the largest (the blue car); now it follows the car
        assert best >= 0.85 * largest, f"{name}: best crop {best:.0f} px of {largest:.0f}"


def _side(box: tuple[float, float, float, float]) -> float:
    return ((box[2] - box[0]) * (box[3] - box[1])) ** 0.5
