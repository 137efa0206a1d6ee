"""A checkpoint camera (卡口): the car fills the frame, the vehicle detector finds nothing, and still the plate is
read and its hotlist alert fires — the plate worker reads the checkpoint camera's frames itself
(workers/plate/checkpoint.py). In-memory bus and local store; real models; an H.264 video made at test time.

The video: ``plates/cn/dataset_0.jpg`` (the rear of a white box truck carrying 川AF058Y, HyperLPR, Apache-2.0)
scaled to fill a 1280×720 frame and drifting slowly (a 3 px pan and a 0.4 % zoom per frame: a vehicle creeping
up to the barrier), 24 frames at 10 fps, libx264 CRF 20, decoded again like ingest does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.enrich import PlateWorkerConfig
from pipeline.hotlists import Hotlist
from pipeline.store.local import LocalStore
from schemas.objects import ObjectCrop
from schemas.topics import FRAMES, OBJECTS
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import BASE_TIME, publish_frames, run_until
from tests.fixtures.enrich.make_videos import HEIGHT, TESTDATA, WIDTH, write_video
from tests.fixtures.enrich.objects import alerts, plates
from workers.detect.worker import DetectWorker
from workers.plate.worker import PlateWorker

GATE = "gate-1"
FRAMES_N = 24
LISTED = Hotlist.model_validate({"name": "stolen", "severity": "critical", "entries": [{"plate": "川AF058Y"}]})


def checkpoint_frames(path: Path) -> list[np.ndarray]:
    photo = cv2.imread(str(TESTDATA / "plates" / "cn" / "dataset_0.jpg"))
    assert photo is not None, f"shared test data not found at {TESTDATA}"
    frames = []
    for i in range(FRAMES_N):
        zoom = 1.0 + 0.004 * i
        scale = max(WIDTH / photo.shape[1], HEIGHT / photo.shape[0]) * 1.08 * zoom
        big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        x0 = (big.shape[1] - WIDTH) // 2 - 36 + 3 * i
        y0 = (big.shape[0] - HEIGHT) // 2
        frames.append(np.ascontiguousarray(big[y0 : y0 + HEIGHT, x0 : x0 + WIDTH]))
    write_video(path, frames)
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1])
    capture.release()
    assert len(decoded) == FRAMES_N
    return decoded


def test_checkpoint_plate_is_read_and_alerts_without_a_vehicle_box(tmp_path: Path) -> None:
    from models.zoo import ModelZoo

    bus, store = MemoryBus(), LocalStore(tmp_path / "store")
    config = TubelineConfig()
    publish_frames(bus, GATE, "s1", checkpoint_frames(tmp_path / "gate.mp4"), fps=10.0)

    detect = DetectWorker(config, bus=bus, store=store)
    run_until(detect, FRAMES_N)
    with bus.consumer([OBJECTS.name], "check-objects") as consumer:
        objects = [ObjectCrop.from_json(m.value) for m in drain(consumer, 0.3)]
    vehicles = [o for o in objects if o.class_name in PlateWorkerConfig().classes]
    assert vehicles == [], f"the detector found a vehicle ({[o.class_name for o in vehicles]}): not the case under test"

    settings = PlateWorkerConfig(checkpoint_cameras=(GATE,), checkpoint_every_n=2)
    worker = PlateWorker(config, bus=bus, store=store, settings=settings, extra_hotlists=(LISTED,),
                         recognizer=ModelZoo(config.models).plate_recognizer(),
                         clock=lambda: BASE_TIME)
    worker.setup()
    try:
        while worker.stats["frames"] + worker.stats["frames_skipped"] < FRAMES_N:
            worker.step()
    finally:
        worker.teardown()
    assert worker.stats["frames"] == FRAMES_N // 2 and worker.stats["checkpoint_reads"] >= FRAMES_N // 4

    reads = plates(bus)
    assert reads, "no plate read published"
    final = max(reads, key=lambda r: r.revision)
    assert final.text == "川AF058Y" and final.camera_id == GATE
    assert {r.track_id for r in reads} == {final.track_id}  # one plate track for the one vehicle
    assert final.track_id.startswith(f"{GATE}.plate.")
    assert len(worker.tracks.peek(final.track_id).reads) >= FRAMES_N // 4  # every read voted on that track
    assert store.get(final.crop_key)[:3] == b"\xff\xd8\xff"

    raised = alerts(bus)
    assert len(raised) == 1
    alert = raised[0]
    assert alert.rule_id == "hotlist:stolen" and alert.details["match_kind"] == "exact"
    assert alert.track_id == final.track_id and alert.camera_id == GATE
    view = cv2.imdecode(np.frombuffer(store.get(alert.evidence_keys[1]), np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = final.plate_box
    assert view is not None and view.shape[0] * view.shape[1] > 4 * (x2 - x1) * (y2 - y1)  # the vehicle's rear

    with bus.consumer([FRAMES.name + ".dlq"], "check-dlq") as consumer:
        assert drain(consumer, 0.2) == []


@pytest.mark.parametrize("camera", ["gate-2"])
def test_frames_of_other_cameras_are_skipped_without_decoding(camera: str, tmp_path: Path) -> None:
    bus, store = MemoryBus(), LocalStore(tmp_path)
    publish_frames(bus, camera, "s1", [np.zeros((64, 64, 3), np.uint8)] * 3)

    class NoRecognizer:
        model_id = "none"

        def recognize(self, *_: object, **__: object) -> None:
            msg = "a frame of a camera that is not a checkpoint was read"
            raise AssertionError(msg)

    worker = PlateWorker(TubelineConfig(), bus=bus, store=store, recognizer=NoRecognizer(),
                         settings=PlateWorkerConfig(checkpoint_cameras=(GATE,)), clock=lambda: BASE_TIME)
    worker.setup()
    try:
        while worker.stats["frames_skipped"] < 3:
            worker.step()
    finally:
        worker.teardown()
    assert worker.stats["frames"] == 0
