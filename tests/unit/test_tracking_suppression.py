"""Cross-class suppression before tracking (``pipeline.tracking.suppress_confusable``): a detector with per-class
NMS boxes one vehicle as car *and* truck; within a confusable group the weaker of two strongly overlapping boxes
goes, while classes outside every group (persons) are never touched."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config.detect import CONFUSABLE_CLASSES, DetectConfig
from pipeline.core import Detections, box_iou
from pipeline.tracking import ByteTracker, suppress_confusable

NAMES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
GROUPS = CONFUSABLE_CLASSES
IOU = DetectConfig().suppress_iou
CAR_BOX = (100.0, 100.0, 300.0, 220.0)


def dets(rows: list[tuple[str, tuple[float, float, float, float], float]], names: tuple[str, ...] = NAMES) -> Detections:
    return Detections(
        xyxy=np.array([r[1] for r in rows], dtype=np.float32).reshape(-1, 4),
        confidence=np.array([r[2] for r in rows], dtype=np.float32),
        class_id=np.array([NAMES.index(r[0]) for r in rows], dtype=np.int32),
        class_names=names,
    )


def shifted(box: tuple[float, float, float, float], dx: float) -> tuple[float, float, float, float]:
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def kept(rows: list[tuple[str, tuple[float, float, float, float], float]],
         groups: tuple[tuple[str, ...], ...] = GROUPS, iou: float = IOU or 0.7) -> list[str]:
    """Class names of the rows that survive, in input order."""
    found = dets(rows)
    return [found.class_name(int(i)) for i in suppress_confusable(found, groups, iou)]


def test_default_threshold_is_on_and_sits_between_the_measured_overlaps() -> None:
    # enrichment test video: duplicate car/truck boxes of one vehicle overlap at IoU 0.89-0.99, two different
    # vehicles at most 0.49 (docs/detect.md)
    assert IOU is not None and 0.5 < IOU < 0.89


@pytest.mark.parametrize(("rows", "expected"), [
    # one vehicle boxed twice: the higher score stays, whichever class it has
    ([("car", CAR_BOX, 0.55), ("truck", shifted(CAR_BOX, 4), 0.61)], ["truck"]),
    ([("car", CAR_BOX, 0.61), ("truck", shifted(CAR_BOX, 4), 0.55)], ["car"]),
    ([("bus", CAR_BOX, 0.4), ("car", shifted(CAR_BOX, 2), 0.5), ("truck", shifted(CAR_BOX, 4), 0.45)], ["car"]),
    # a scooter called bicycle and motorcycle at once
    ([("bicycle", CAR_BOX, 0.5), ("motorcycle", shifted(CAR_BOX, 3), 0.6)], ["motorcycle"]),
    # a person and a car (or the bicycle he rides) at the same place: never one object
    ([("car", CAR_BOX, 0.9), ("person", shifted(CAR_BOX, 2), 0.5)], ["car", "person"]),
    ([("person", CAR_BOX, 0.7), ("bicycle", CAR_BOX, 0.8), ("motorcycle", shifted(CAR_BOX, 1), 0.6)],
     ["person", "bicycle"]),
    # car and motorcycle are in different groups: left alone even at the same box
    ([("car", CAR_BOX, 0.6), ("motorcycle", CAR_BOX, 0.5)], ["car", "motorcycle"]),
    # two vehicles side by side, overlapping below the threshold: both stay
    ([("car", CAR_BOX, 0.6), ("truck", shifted(CAR_BOX, 60), 0.7)], ["car", "truck"]),
])
def test_suppression_table(rows: list, expected: list[str]) -> None:
    assert kept(rows) == expected


def test_threshold_is_inclusive_and_measured_as_iou() -> None:
    a, b = CAR_BOX, shifted(CAR_BOX, 35)
    iou = float(box_iou(np.array([a]), np.array([b]))[0, 0])
    rows = [("car", a, 0.6), ("truck", b, 0.5)]
    assert kept(rows, iou=iou - 1e-4) == ["car"]
    assert kept(rows, iou=iou + 1e-3) == ["car", "truck"]


def test_a_suppressed_box_does_not_suppress_others() -> None:
    # truck overlaps the stronger car and the bus, but car and bus overlap each other only a little:
    # greedy by score keeps car, drops truck, and keeps bus (the truck is gone, it cannot remove the bus)
    car, truck, bus = (0.0, 0.0, 100.0, 100.0), (10.0, 0.0, 110.0, 100.0), (24.0, 0.0, 124.0, 100.0)
    assert kept([("bus", bus, 0.5), ("truck", truck, 0.7), ("car", car, 0.9)], iou=0.8) == ["bus", "car"]


def test_rows_keep_their_order_and_other_classes_pass_through() -> None:
    rows = [("person", (0.0, 0.0, 10.0, 30.0), 0.3), ("truck", CAR_BOX, 0.5), ("person", (50.0, 0.0, 60.0, 30.0), 0.9),
            ("car", shifted(CAR_BOX, 3), 0.8)]
    found = dets(rows)
    assert suppress_confusable(found, GROUPS, 0.7).tolist() == [0, 2, 3]


def test_no_groups_or_no_class_names_suppress_nothing() -> None:
    rows = [("car", CAR_BOX, 0.6), ("truck", CAR_BOX, 0.5)]
    assert kept(rows, groups=()) == ["car", "truck"]
    assert suppress_confusable(dets(rows, names=()), GROUPS, 0.7).tolist() == [0, 1]
    assert suppress_confusable(Detections.empty(class_names=NAMES), GROUPS, 0.7).tolist() == []


def test_one_vehicle_boxed_twice_and_flickering_gets_one_track() -> None:
    """Without suppression the second box of a car/truck pair starts a second track; with it there is one."""
    frames = []
    for k in range(10):
        box = shifted(CAR_BOX, 12 * k)
        car, truck = (0.62, 0.58) if k % 2 else (0.57, 0.63)  # the stronger class flips every frame
        frames.append(dets([("car", box, car), ("truck", shifted(box, 3), truck)]))

    def tracks(suppress: bool) -> set[int]:
        tracker = ByteTracker()
        ids: set[int] = set()
        for k, found in enumerate(frames):
            if suppress:
                found = found[suppress_confusable(found, GROUPS, 0.7)]
            ids |= set(tracker.update(found, 0.2 * k).tracker_id.tolist())
        return ids

    assert len(tracks(suppress=False)) == 2
    assert len(tracks(suppress=True)) == 1


@pytest.mark.parametrize("groups", [
    [["car"]],
    [["car", "truck"], ["truck", "bus"]],
    [["Car", "truck"]],
])
def test_config_rejects_malformed_groups(groups: list[list[str]]) -> None:
    with pytest.raises(ValueError, match="confusable_classes"):
        DetectConfig(confusable_classes=groups)


def test_config_suppression_can_be_turned_off_and_is_bounded() -> None:
    assert DetectConfig(suppress_iou=None).suppress_iou is None
    with pytest.raises(ValueError, match="suppress_iou"):
        DetectConfig(suppress_iou=0.1)
    schema = DetectConfig.model_json_schema()["properties"]
    for name in ("confusable_classes", "suppress_iou", "hold_best_crop"):
        assert schema[name]["title"] and schema[name]["description"]
