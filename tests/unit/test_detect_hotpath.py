"""The detector hot path: fused preprocessing gives the reference tensor, a rectangular input keeps the
aspect ratio, a batch of mixed frames gives each frame's own boxes, and a model that cannot take a
rectangle falls back to its square."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.detectors import (
    Preprocessor,
    YoloDetector,
    accepts_rect,
    batched_nms,
    rect_shape,
    to_tensor,
    yolo_metadata_names,
)
from models.geometry import letterbox, nms, stretch
from models.registry import InputSpec
from models.runtime import OnnxModel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
NANODET = InputSpec(shape=(1, 3, 416, 416), mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395))
YOLO = InputSpec(shape=(1, 3, 320, 320), color="RGB", std=(255.0, 255.0, 255.0), resize="letterbox")


@pytest.mark.parametrize(("w", "h", "side", "expected"), [
    (1920, 1080, 416, (256, 416)), (768, 576, 416, (320, 416)), (1080, 1920, 640, (640, 384)), (500, 500, 416, (416, 416)),
])
def test_rect_shape(w: int, h: int, side: int, expected: tuple[int, int]) -> None:
    assert rect_shape(w, h, side) == expected


@pytest.mark.parametrize("spec", [NANODET, YOLO], ids=["bgr-meanstd", "rgb-scale"])
def test_fused_preprocessing_equals_reference(spec: InputSpec) -> None:
    rng = np.random.default_rng(1)
    pre = Preprocessor(spec)
    # Same canvas reused by frames with different margins: stale pixels of the previous frame must not show.
    for shape, (height, width), mode in [((1080, 1920, 3), (320, 416), "letterbox"),
                                         ((600, 300, 3), (320, 416), "letterbox"),
                                         ((576, 768, 3), (416, 416), "stretch"),
                                         ((416, 416, 3), (416, 416), "stretch")]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        out = np.empty((3, height, width), np.float32)
        got = pre.fill_into(image, out, mode)
        resized, want = (letterbox if mode == "letterbox" else stretch)(image, width, height)
        assert got == want
        np.testing.assert_allclose(out, to_tensor(resized, spec), atol=1e-5)


@pytest.fixture(scope="module")
def yolo() -> YoloDetector:
    expected = json.loads((FIXTURES / "yolo11n-random-320.expected.json").read_text())
    model = OnnxModel(FIXTURES / "yolo11n-random-320.onnx", sha256=expected["sha256"])
    return YoloDetector(model, YOLO, "fixture@1", yolo_metadata_names(model.metadata), score=expected["conf"])


def test_fixed_yolo_export_refuses_a_rectangle() -> None:
    """The committed fixture is a fixed-size export: its attention reshapes fail at 320×224, so the zoo keeps it square."""
    model = OnnxModel(FIXTURES / "yolo11n-random-320.onnx", dynamic_spatial=True, warmup_shape=[1, 3, 320, 320])
    assert not accepts_rect(model, 320, 320)


def test_mixed_batch_equals_one_by_one_and_unfused(yolo: YoloDetector, testdata: Path) -> None:
    dog = cv2.imread(str(testdata / "images" / "dog.jpg"))
    assert dog is not None
    frames = [dog, cv2.resize(dog, (dog.shape[1] // 2, dog.shape[0])), dog[:, ::-1].copy(), cv2.rotate(dog, 0)]
    batched = yolo.detect_batch(frames)
    single = [yolo.detect(f) for f in frames]
    yolo._fused = False
    try:
        unfused = yolo.detect_batch(frames)
    finally:
        yolo._fused = True
    assert sum(len(d) for d in batched) > 0
    for b, s, u in zip(batched, single, unfused, strict=True):
        assert len(b) == len(s) == len(u)
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=1.0)
        np.testing.assert_allclose(b.xyxy, u.xyxy, atol=1.0)
        np.testing.assert_array_equal(b.class_id, u.class_id)


def test_batched_nms_equals_reference_nms() -> None:
    """Same kept indices in the same order as models.geometry.nms, ties and crowded classes included."""
    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(1, 300))
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.column_stack([xy, xy + rng.uniform(1, 80, (n, 2))]).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        if trial % 3 == 0:
            scores = np.round(scores, 1)  # many ties: the stable order must agree
        classes = rng.integers(0, 3, n)
        iou = float(rng.choice([0.3, 0.5, 0.7]))
        np.testing.assert_array_equal(batched_nms(boxes, scores, iou, classes), nms(boxes, scores, iou, classes))


def test_tensorrt_gets_an_explicit_profile_only_for_dynamic_inputs() -> None:
    from models.runtime import RuntimeOptions, select_providers, trt_profile

    assert trt_profile("x", [1, 3, 416, 416], 8, (416, 416)) == {}
    rect = trt_profile("input_1:0", [1, 3, "h", "w"], 8, (416, 416))  # NanoDet, spatially dynamic, batch 1
    assert rect == {"trt_profile_min_shapes": "input_1:0:1x3x64x64", "trt_profile_opt_shapes": "input_1:0:1x3x416x416",
                    "trt_profile_max_shapes": "input_1:0:1x3x416x416"}
    plate = trt_profile("in", ["B", 3, "H", "W"], 32, None)
    assert plate["trt_profile_opt_shapes"] == "in:8x3x640x640" and plate["trt_profile_max_shapes"] == "in:32x3x1920x1920"
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    picked = select_providers(RuntimeOptions(engine_cache=Path("/tmp/trt")), available, profile=rect)
    assert picked[0][0] == "TensorrtExecutionProvider" and picked[0][1]["trt_profile_max_shapes"].endswith("416x416")
    assert picked[0][1]["trt_engine_cache_enable"] and picked[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    # On this CPU-only build the same request falls back to the CPU provider.
    assert select_providers(RuntimeOptions(), ["CPUExecutionProvider"], profile=rect) == ["CPUExecutionProvider"]


def test_reused_input_buffer_leaves_no_trace_of_the_previous_frame(yolo: YoloDetector, testdata: Path) -> None:
    """The batch tensor is reused between calls: a frame's boxes must not depend on what ran before it."""
    dog = cv2.imread(str(testdata / "images" / "dog.jpg"))
    assert dog is not None
    other = cv2.resize(dog[:, ::-1], (dog.shape[1] // 2, dog.shape[0] // 3))  # other margins in the letterbox
    fresh = YoloDetector(yolo.model, YOLO, "fixture@1", yolo.class_names, score=yolo.score).detect(dog)
    yolo.detect_batch([other, other])
    yolo.detect(other)
    again = yolo.detect(dog)
    assert len(fresh) > 0
    np.testing.assert_array_equal(again.xyxy, fresh.xyxy)
    np.testing.assert_array_equal(again.confidence, fresh.confidence)


def test_nanodet_decode_keeps_the_cells_of_the_numpy_maximum() -> None:
    """decode_nanodet takes each cell's best class score with OpenCV's reduction: the same cells, scores and
    classes as numpy's max/argmax (ties included)."""
    from models.detectors import decode_nanodet

    rng = np.random.default_rng(3)
    strides, width, height = (8, 16, 32), 96, 64
    cells = [int(np.ceil(height / s) * np.ceil(width / s)) for s in strides]
    cls_maps = [rng.uniform(0, 1, (n, 80)).astype(np.float32) ** 8 for n in cells]
    cls_maps[1][:5, :2] = 0.9  # tied best scores within a cell
    reg_maps = [rng.normal(0, 2, (n, 44)).astype(np.float32) for n in cells]
    boxes, scores, classes = decode_nanodet(cls_maps, reg_maps, strides, width, height, 0.35)
    want_scores = np.concatenate([m.max(axis=1)[m.max(axis=1) > 0.35] for m in cls_maps])
    want_classes = np.concatenate([m.argmax(axis=1)[m.max(axis=1) > 0.35] for m in cls_maps])
    assert len(scores) > 10
    np.testing.assert_array_equal(scores, want_scores)
    np.testing.assert_array_equal(classes, want_classes)
    assert boxes.shape == (len(scores), 4)


def test_kalman_process_noise_equals_the_block_matrix() -> None:
    """The process noise is filled in place instead of with np.block: bit-identical, so tracks do not change."""
    from pipeline.tracking.kalman import BoxKalman

    for dt, height in [(0.2, 80.0), (1.0, 3.0), (0.04, 400.0), (7.5, 0.2)]:
        k = BoxKalman(np.array([10.0, 20.0, 50.0, 20.0 + height]))
        spectral = np.array([k.noise.accel_std, k.noise.accel_std, k.noise.size_accel_std, k.noise.size_accel_std])
        q = np.diag((spectral * max(k.mean[3], 1.0)) ** 2)
        want = np.block([[q * dt**3 / 3, q * dt**2 / 2], [q * dt**2 / 2, q * dt]])
        np.testing.assert_array_equal(k._process_noise(dt), want)


def test_yolo_decode_equals_the_full_argmax() -> None:
    """decode_yolo takes each anchor's best score with OpenCV's reduction and the argmax only of the anchors that
    pass: the same boxes, scores and classes as the full argmax (ties included)."""
    from models.detectors import decode_yolo

    rng = np.random.default_rng(5)
    out = rng.uniform(0, 1, (84, 2100)).astype(np.float32)
    out[4:] **= 6
    out[4:6, :40] = 0.8  # tied best classes
    boxes, scores, classes = decode_yolo(out, 0.5)
    best = out[4:].argmax(axis=0)
    top = out[4:].max(axis=0)
    kept = top > 0.5
    assert kept.sum() > 50
    np.testing.assert_array_equal(scores, top[kept])
    np.testing.assert_array_equal(classes, best[kept])
    cx, cy, w, h = out[:4, kept]
    np.testing.assert_array_equal(boxes, np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
