"""Face quality gates, the choice of faces per track, and the schema's quality block — as tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.config.enrich import FaceWorkerConfig
from workers.face.quality import FaceMeasures, TrackFaces, failed_gate, reason_to_publish, wire_quality

SETTINGS = FaceWorkerConfig()
GOOD = FaceMeasures(detection=0.95, eye_distance=45.0, sharpness=300.0, yaw=3.0, pitch=0.05, roll=2.0, quality=0.9)


@pytest.mark.parametrize(
    ("change", "gate"),
    [
        ({}, None),
        ({"detection": 0.55}, "detection"),
        ({"eye_distance": 11.0}, "eye_distance"),
        ({"eye_distance": 12.0}, None),  # a frontal face with eyes 12 px apart still verifies (docs/models.md)
        ({"sharpness": 8.0}, "sharpness"),  # motion blur
        ({"sharpness": 13.0}, None),  # the σ 2 blurred dev faces (sharpness 13-18) verify
        ({"yaw": -55.0}, "yaw"),  # near profile
        ({"yaw": 39.0}, None),
        ({"pitch": 0.5}, "pitch"),  # looking down
        ({"roll": -60.0}, "roll"),
        ({"quality": 0.04}, "quality"),
        ({"detection": 0.1, "yaw": 80.0}, "detection"),  # the first failing gate is reported
    ],
)
def test_gates(change: dict[str, float], gate: str | None) -> None:
    assert failed_gate(dataclasses.replace(GOOD, **change), SETTINGS) == gate


def test_gates_follow_the_configuration() -> None:
    lenient = FaceWorkerConfig(max_yaw_deg=60, min_eye_distance_px=8)
    face = dataclasses.replace(GOOD, yaw=55.0, eye_distance=10.0)
    assert failed_gate(face, SETTINGS) == "eye_distance"
    assert failed_gate(face, lenient) is None


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values + (0.0,) * (16 - len(values)), dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize(
    ("published", "quality", "embedding", "reason"),
    [
        ([], 0.3, None, "first"),  # the first good face goes out at once, before embedding
        ([(0.5, unit(1, 0))], 0.6, unit(1, 0.01), None),  # same view, not 1.25x better
        ([(0.5, unit(1, 0))], 0.63, None, "better"),
        ([(0.5, unit(1, 0))], 0.6, None, None),  # cannot tell "diverse" without the vector
        ([(0.5, unit(1, 0))], 0.4, unit(1, 0.5), "diverse"),  # cos = 0.89 < 0.97: another view
        ([(0.5, unit(1, 0)), (0.6, unit(0, 1))], 0.4, unit(1, 1), "diverse"),  # 0.71 to both
        ([(0.5, unit(1, 0)), (0.6, unit(0, 1)), (0.7, unit(1, 1))], 0.99, unit(1, -1), None),  # track is full
    ],
)
def test_which_faces_a_track_publishes(published: list, quality: float, embedding: np.ndarray | None,
                                       reason: str | None) -> None:
    track = TrackFaces("t", "cam")
    for q, e in published:
        track.add(q, e)
    assert reason_to_publish(track, quality, embedding, SETTINGS) == reason


def test_wire_quality_components_are_bounded() -> None:
    chip = np.full((150, 150, 3), 128, np.uint8)
    q = wire_quality(GOOD, chip, template_eye_distance=53.0)
    assert q.score == 0.9 and q.detection == 0.95
    assert q.brightness == 1.0 and q.sharpness == 1.0 and q.resolution == pytest.approx(45 / 53, abs=1e-4)
    assert 0.8 < q.frontality < 1.0
    dark = wire_quality(dataclasses.replace(GOOD, yaw=90.0, sharpness=3.0), np.zeros((150, 150, 3), np.uint8), 53.0)
    assert dark.brightness == 0.0 and dark.frontality == 0.0 and dark.sharpness == 0.05
