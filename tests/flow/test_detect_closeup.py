"""Close-up cameras (`detect.closeup_cameras`, and every `plate.checkpoint_cameras` camera): their frames go through
the close-up detector views, other cameras' through the configured detector, in one worker and one batch loop.

Frames: the front of a silver minivan filling the photo (`plates/cn/dataset_8.jpg`, 544×241) and the front of a
white saloon (`dataset_6.jpg`, 793×353), HyperLPR test images (Apache-2.0). NanoDet on the stretched frame finds no
vehicle on the first and does not see the saloon as a car (docs/detect.md, "Vehicles in close-up"); the test shows that
baseline on an ordinary camera in the same run, so the close-up camera's answer means something."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.local import LocalStore
from schemas.detections import Detections as DetectionsMessage
from schemas.topics import DETECTIONS
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import publish_frames, run_until
from tests.fixtures.enrich.make_videos import TESTDATA
from workers.detect.worker import DetectWorker

VEHICLES = {"car", "truck", "bus"}
FRAMES_N = 6


@pytest.fixture(scope="module")
def detector():  # noqa: ANN201
    from models.zoo import ModelZoo

    return ModelZoo(TubelineConfig().models).detector()


def still(name: str) -> list[np.ndarray]:
    image = cv2.imread(str(TESTDATA / "plates" / "cn" / name))
    if image is None:
        pytest.fail(f"shared test data not found at {TESTDATA}")
    return [image] * FRAMES_N


def detect(overrides: dict[str, object], cameras: dict[str, list[np.ndarray]], detector, tmp: Path  # noqa: ANN001
           ) -> dict[str, list[DetectionsMessage]]:
    bus, store = MemoryBus(default_partitions=1), LocalStore(tmp / "store")
    for camera, frames in cameras.items():
        publish_frames(bus, camera, f"s-{camera}", frames)
    config = with_overrides(TubelineConfig(), overrides)
    run_until(DetectWorker(config, bus=bus, store=store, detector=detector, close_on_stop=True),
              sum(len(f) for f in cameras.values()))
    with bus.consumer([DETECTIONS.name], "check") as consumer:
        messages = [DetectionsMessage.from_json(m.value) for m in drain(consumer, 0.5)]
    return {camera: sorted((m for m in messages if m.camera_id == camera), key=lambda m: m.sequence)
            for camera in cameras}


def vehicle_classes(messages: list[DetectionsMessage]) -> list[set[str]]:
    return [{o.class_name for o in m.objects if o.class_name in VEHICLES} for m in messages]


def test_closeup_camera_finds_the_vehicle_an_ordinary_camera_misses(detector, tmp_path: Path) -> None:  # noqa: ANN001
    out = detect({"detect.closeup_cameras": ["gate-1"]},
                 {"gate-1": still("dataset_8.jpg"), "street-1": still("dataset_8.jpg"),
                  "gate-1b": still("dataset_6.jpg")}, detector, tmp_path)
    assert len(out["gate-1"]) == len(out["street-1"]) == FRAMES_N
    # the ordinary camera: the stretched frame shows no vehicle (the baseline)
    assert vehicle_classes(out["street-1"]) == [set()] * FRAMES_N
    assert {m.model_id for m in out["street-1"]} == {detector.model_id}
    # the close-up camera: the minivan is found on every frame, as a car (score 0.47: under the tracker's 0.5 for a
    # new track, so it gets no track and no crop; a checkpoint camera's plates come from whole frames anyway)
    assert vehicle_classes(out["gate-1"]) == [{"car"}] * FRAMES_N
    assert {m.model_id for m in out["gate-1"]} == {f"{detector.model_id}/stretch+square+square@2"}
    # not listed: the configured view alone does not see the saloon as a car (square input: a truck; rect: nothing)
    assert "car" not in set().union(*vehicle_classes(out["gate-1b"]))


def test_checkpoint_cameras_are_closeup_cameras_and_views_are_configurable(detector, tmp_path: Path) -> None:  # noqa: ANN001
    out = detect({"plate.checkpoint_cameras": ["gate-2"], "detect.closeup_views": ["stretch", "square@2"]},
                 {"gate-2": still("dataset_6.jpg")}, detector, tmp_path)
    # the saloon the stretched view calls a truck is a car once its shape is seen with the aspect kept
    assert vehicle_classes(out["gate-2"]) == [{"car"}] * FRAMES_N
    assert {m.model_id for m in out["gate-2"]} == {f"{detector.model_id}/stretch+square@2"}


def test_bad_closeup_views_are_refused() -> None:
    with pytest.raises(ValueError, match="closeup_views"):
        with_overrides(TubelineConfig(), {"detect.closeup_views": ["square@9"]})
