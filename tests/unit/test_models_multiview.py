"""The multi-view detector: view parsing and rendering, fusion of several views' boxes (table-driven), and the
wrapper's mapping of boxes back to frame pixels with a fake base detector (no model files)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from models.multiview import MultiViewDetector, View, fuse
from pipeline.config.models import ModelsConfig
from pipeline.core import Detections
from schemas.common import MODEL_ID_PATTERN

NAMES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
CAR, TRUCK, PERSON, BUS = 2, 5, 0, 4


def dets(rows: Sequence[tuple[float, float, float, float, float, int]]) -> Detections:
    arr = np.asarray(rows, np.float32).reshape(-1, 6)
    return Detections(xyxy=arr[:, :4], confidence=arr[:, 4], class_id=arr[:, 5].astype(np.int32),
                      class_names=NAMES)


@pytest.mark.parametrize(("text", "kind", "scale"), [("stretch", "stretch", 1.0), ("square", "square", 1.0),
                                                      ("square@2", "square", 2.0), (" square@1.5 ", "square", 1.5)])
def test_view_parse(text: str, kind: str, scale: float) -> None:
    assert View.parse(text) == View(kind, scale)


@pytest.mark.parametrize("text", ["stretch@2", "square@0.5", "square@5", "letterbox", ""])
def test_view_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="view"):
        View.parse(text)


def test_config_rejects_unknown_views() -> None:
    assert ModelsConfig(detector_views=("stretch", "square@2")).detector_views == ("stretch", "square@2")
    for bad in (("square@9",), ("stretch", "stretch"), ("wide",)):
        with pytest.raises(ValueError, match="view"):
            ModelsConfig(detector_views=bad)


def test_square_view_centres_the_frame() -> None:
    image = np.full((100, 300, 3), 7, np.uint8)
    canvas, x, y = View("square", 2.0).render(image)
    assert canvas.shape == (600, 600, 3) and (x, y) == (150, 250)
    assert (canvas[y : y + 100, x : x + 300] == 7).all() and canvas[0, 0, 0] == 114
    same, x0, y0 = View("stretch").render(image)
    assert same is image and (x0, y0) == (0, 0)


@pytest.mark.parametrize(
    ("parts", "shape_true", "expected"),
    [
        # one object seen as truck (stretched) and car twice (aspect kept): car, best box and score
        ([[(0, 0, 100, 50, 0.36, TRUCK)], [(2, 1, 98, 50, 0.40, CAR)], [(1, 0, 99, 52, 0.59, CAR)]],
         [False, True, True], [(1, 0, 99, 52, 0.59, CAR)]),
        # without shape information every member votes: truck 0.9 beats car 0.4 + 0.3
        ([[(0, 0, 100, 50, 0.9, TRUCK)], [(2, 1, 98, 50, 0.4, CAR)], [(1, 0, 99, 52, 0.3, CAR)]],
         None, [(0, 0, 100, 50, 0.9, TRUCK)]),
        # the stretched view's class counts only when no aspect-true view saw the object
        ([[(0, 0, 100, 50, 0.9, TRUCK)], [(300, 0, 400, 50, 0.5, CAR)]], [False, True],
         [(0, 0, 100, 50, 0.9, TRUCK), (300, 0, 400, 50, 0.5, CAR)]),
        # a person on a car's box is another group: both stay
        ([[(0, 0, 100, 50, 0.8, CAR), (0, 0, 100, 50, 0.7, PERSON)]], None,
         [(0, 0, 100, 50, 0.8, CAR), (0, 0, 100, 50, 0.7, PERSON)]),
        # two vehicles overlapping below the IoU stay two
        ([[(0, 0, 100, 50, 0.8, CAR)], [(60, 0, 160, 50, 0.7, BUS)]], None,
         [(0, 0, 100, 50, 0.8, CAR), (60, 0, 160, 50, 0.7, BUS)]),
        ([[], []], None, []),
    ],
)
def test_fuse(parts: list, shape_true: list | None, expected: list) -> None:
    fused = fuse([dets(p) for p in parts], NAMES, iou=0.5, shape_true=shape_true)
    got = sorted((tuple(round(float(v), 2) for v in fused.xyxy[i]), round(float(fused.confidence[i]), 2),
                  int(fused.class_id[i])) for i in range(len(fused)))
    want = sorted((tuple(float(v) for v in row[:4]), row[4], row[5]) for row in expected)
    assert got == want


class FakeBase:
    """Finds one 'car' filling whatever image it gets and one person at its top-left 10×20 pixels."""

    model_id = "fake@1"
    class_names = NAMES
    score = 0.35

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            self.seen.append(image.shape)
            h, w = image.shape[:2]
            out.append(dets([(0, 0, w, h, 0.5, CAR), (0, 0, 10, 20, 0.6, PERSON)]))
        return out


def test_views_map_back_and_only_the_first_adds_persons() -> None:
    base = FakeBase()
    detector = MultiViewDetector(base, ["stretch", "square@2"])
    found = detector.detect(np.zeros((100, 200, 3), np.uint8))
    assert base.seen == [(100, 200, 3), (400, 400, 3)]
    names = sorted(found.class_name(i) for i in range(len(found)))
    assert names == ["car", "person"]  # the square view's car (the canvas, clipped) merges; its person is dropped
    car = int(np.flatnonzero(found.class_id == CAR)[0])
    assert found.xyxy[car].tolist() == [0.0, 0.0, 200.0, 100.0]
    assert detector.model_id == "fake@1/stretch+square@2"
    # the ID travels in detections.v1: it must pass the schema's model-ID rule (brackets did not)
    assert re.fullmatch(MODEL_ID_PATTERN, MultiViewDetector(base, ["stretch", "square", "square@2.5"]).model_id)
    detector.score = 0.2
    assert base.score == 0.2
