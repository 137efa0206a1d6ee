"""Table-driven tests of the model-output decoders and geometry (no model files needed), plus the YOLO
decoder against ultralytics' own predictions on the committed random-weight fixture."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.detectors import YoloDetector, decode_nanodet, decode_yolo, yolo_metadata_names
from models.faces.alignment import ARCFACE_112, align, pose_from_landmarks
from models.faces.centerface import decode_centerface
from models.geometry import (
    Resize,
    expand_quad,
    fit_multiple,
    letterbox,
    nms,
    order_corners,
    similarity_transform,
    transform_points,
)
from models.plates.detector import decode_retina, make_priors
from models.registry import InputSpec
from models.runtime import OnnxModel
from pipeline.core import box_iou

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "iou", "kept"),
    [
        ([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.8, 0.7], None, 0.5, [0, 2]),
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.8, 0.9], None, 0.5, [1]),
        (
            [[0, 0, 10, 10], [1, 1, 11, 11]],
            [0.9, 0.8],
            [0, 1],
            0.5,
            [0, 1],
        ),  # different classes never suppress
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], None, 0.5, [0, 1]),  # IoU 1/3 stays
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], None, 0.3, [0]),
        ([], [], None, 0.5, []),
    ],
)
def test_nms(boxes: list, scores: list, classes: list | None, iou: float, kept: list) -> None:
    assert nms(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), iou, classes).tolist() == kept


@pytest.mark.parametrize(
    ("column", "expected_box", "expected_class"),
    [
        ([50, 40, 20, 10, 0.1, 0.9], [40, 35, 60, 45], 1),
        ([10, 10, 4, 8, 0.95, 0.2], [8, 6, 12, 14], 0),
    ],
)
def test_decode_yolo_raw_head(column: list, expected_box: list, expected_class: int) -> None:
    out = np.zeros((6, 3), np.float32)
    out[:, 1] = column
    out[4:, 0] = 0.01  # below threshold
    boxes, scores, classes = decode_yolo(out, 0.5)
    assert boxes.tolist() == [expected_box]
    assert classes.tolist() == [expected_class]
    assert scores[0] == pytest.approx(max(column[4:]))


def test_decode_yolo_end_to_end_rows() -> None:
    rows = np.float32([[1, 2, 3, 4, 0.9, 7], [0, 0, 1, 1, 0.1, 2]])
    boxes, scores, classes = decode_yolo(rows, 0.5)
    assert boxes.tolist() == [[1, 2, 3, 4]] and classes.tolist() == [7]


def test_decode_nanodet_distribution_expectation() -> None:
    bins = 11
    reg = np.full((4, 4 * bins), -50.0, np.float32)  # 2×2 grid at stride 8 on a 16×16 input
    cell = 3  # row 1, col 1 → centre (12, 12)
    for side, distance in enumerate((1, 2, 3, 4)):  # all mass on one bin: distance × stride
        reg[cell, side * bins + distance] = 50.0
    cls = np.zeros((4, 2), np.float32)
    cls[cell, 1] = 0.8
    boxes, scores, classes = decode_nanodet([cls], [reg], [8], 16, 16, 0.5)
    assert boxes.tolist() == [[12 - 8, 0, 16, 16]]  # top, right and bottom clipped to the input
    assert classes.tolist() == [1] and scores[0] == pytest.approx(0.8)


def test_yolo_metadata_names() -> None:
    assert yolo_metadata_names({"names": "{0: 'person', 1: 'car'}"}) == ("person", "car")
    assert yolo_metadata_names({"names": "not python"}) == ()
    assert yolo_metadata_names({}) == ()


def test_yolo_decoder_matches_ultralytics_on_fixture() -> None:
    """The committed random-weight YOLO11n export, decoded here, equals ultralytics' own predict()."""
    expected = json.loads((FIXTURES / "yolo11n-random-320.expected.json").read_text())
    model = OnnxModel(
        FIXTURES / "yolo11n-random-320.onnx", sha256=expected["sha256"], expected_shape=[1, 3, 320, 320]
    )
    assert model.outputs[0].shape == [1, 84, 2100]
    spec = InputSpec(shape=(1, 3, 320, 320), color="RGB", std=(255.0, 255.0, 255.0), resize="letterbox")
    names = yolo_metadata_names(model.metadata)
    detector = YoloDetector(model, spec, "fixture@1", names, score=expected["conf"], iou=expected["iou"])
    assert len(names) == 80
    for image_name, want in expected["images"].items():
        got = detector.detect(cv2.imread(str(TESTDATA / "images" / image_name)))
        assert len(got) == len(want["boxes"]) > 10
        overlap = box_iou(np.asarray(want["boxes"], np.float32), got.xyxy)
        assert overlap.max(axis=1).min() > 0.999
        assert sorted(got.class_id.tolist()) == sorted(want["classes"])
        assert np.sort(got.confidence)[::-1] == pytest.approx(want["scores"], abs=1e-5)
        assert got.source == "fixture@1"


def test_retina_priors_and_decode_roundtrip() -> None:
    priors = make_priors(64, 96)
    assert len(priors) == (8 * 12 + 4 * 6 + 2 * 3) * 2
    loc = np.zeros((len(priors), 4), np.float32)
    conf = np.zeros((len(priors), 2), np.float32)
    conf[5, 1] = 0.9
    lms = np.zeros((len(priors), 8), np.float32)
    boxes, scores, corners = decode_retina(loc, conf, lms, priors, 96, 64, 0.5)
    cx, cy = priors[5, 0] * 96, priors[5, 1] * 64
    w, h = priors[5, 2] * 96, priors[5, 3] * 64
    assert boxes[0] == pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], abs=1e-4)
    assert corners.shape == (1, 4, 2) and corners[0, 0] == pytest.approx([cx, cy], abs=1e-4)


def test_decode_centerface_single_peak() -> None:
    heat = np.zeros((1, 8, 8), np.float32)
    heat[0, 2, 3] = 0.9
    scale = np.zeros((2, 8, 8), np.float32)
    scale[:, 2, 3] = np.log(10 / 4)  # 10 px square
    offset = np.zeros((2, 8, 8), np.float32)
    lms = np.zeros((10, 8, 8), np.float32)
    lms[1, 2, 3], lms[0, 2, 3] = 0.5, 0.5  # first landmark at the box centre
    boxes, scores, points = decode_centerface(heat, scale, offset, lms, 32, 32, 0.5)
    assert boxes[0] == pytest.approx([9.0, 5.0, 19.0, 15.0], abs=1e-4)
    assert points[0, 0] == pytest.approx([14.0, 10.0], abs=1e-4)


@pytest.mark.parametrize("shape", [(576, 768), (100, 400), (640, 320)])
def test_letterbox_inverse(shape: tuple[int, int]) -> None:
    image = np.zeros((*shape, 3), np.uint8)
    out, resize = letterbox(image, 320, 320)
    assert out.shape == (320, 320, 3)
    corners = np.float32([[0, 0], [shape[1], shape[0]]])
    model_pts = corners * resize.scale_x + [resize.pad_x, resize.pad_y]
    assert resize.to_original(model_pts) == pytest.approx(corners, abs=1e-3)


def test_fit_multiple_pads_and_scales() -> None:
    out, resize = fit_multiple(np.zeros((100, 250, 3), np.uint8), 125, 32)
    assert out.shape[:2] == (64, 128)
    assert resize == Resize(0.5, 0.5)


@pytest.mark.parametrize("perm", [(0, 1, 2, 3), (2, 3, 0, 1), (3, 0, 1, 2), (1, 3, 0, 2)])
def test_order_corners(perm: tuple[int, ...]) -> None:
    quad = np.float32([[10, 12], [90, 8], [92, 40], [8, 44]])
    assert order_corners(quad[list(perm)]).tolist() == quad.tolist()


def test_expand_quad_grows_about_centre() -> None:
    quad = np.float32([[0, 0], [100, 0], [100, 20], [0, 20]])
    assert expand_quad(quad, 1.1, 1.5).tolist() == [[-5, -5], [105, -5], [105, 25], [-5, 25]]


@pytest.mark.parametrize(
    ("angle", "scale", "shift"), [(0, 1, (0, 0)), (30, 2, (5, -3)), (-90, 0.5, (100, 40))]
)
def test_similarity_transform_recovers(angle: float, scale: float, shift: tuple[float, float]) -> None:
    rad = np.radians(angle)
    rot = scale * np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    src = ARCFACE_112.astype(np.float64)
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    assert transform_points(matrix, src) == pytest.approx(dst, abs=1e-6)


def test_align_puts_landmarks_on_template() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    landmarks = ARCFACE_112 * 2 + 20  # a face twice the template's size
    chip = align(image, landmarks, ARCFACE_112, 112)
    assert chip.shape == (112, 112, 3)
    x, y = (ARCFACE_112[0] * 2 + 20).astype(int)
    assert (
        abs(int(chip[int(ARCFACE_112[0][1]), int(ARCFACE_112[0][0])].mean()) - int(image[y, x].mean())) < 60
    )


@pytest.mark.parametrize(
    ("shift", "expect_yaw_sign"),
    [(0.0, 0), (10.0, 1), (-10.0, -1)],
)
def test_pose_from_landmarks(shift: float, expect_yaw_sign: int) -> None:
    points = ARCFACE_112.copy()
    points[2, 0] += shift
    yaw, pitch, roll = pose_from_landmarks(points)
    assert abs(roll) < 1.0 and abs(pitch) < 0.1
    assert np.sign(round(yaw)) == expect_yaw_sign
