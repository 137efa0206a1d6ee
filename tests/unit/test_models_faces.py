"""Face pipeline on the installed models and the shared test faces (fails, never skips, without models)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.evaluation import verification_errors
from models.faces.alignment import assess
from models.protocols import FaceDetector, FaceEmbedder
from models.zoo import ModelZoo

FACES = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "faces"


@pytest.fixture(scope="module")
def analyzer():  # noqa: ANN201
    return ModelZoo().face_analyzer()


@pytest.fixture(scope="module")
def embeddings(analyzer) -> dict[str, np.ndarray]:  # noqa: ANN001
    out = {}
    for name in ("person_a_1", "person_a_2", "person_b_1"):
        found = analyzer.best_embedding(cv2.imread(str(FACES / f"{name}.jpg")))
        assert found is not None, name
        out[name] = found[0]
    return out


def test_protocols(analyzer) -> None:  # noqa: ANN001
    assert isinstance(analyzer.detector, FaceDetector)
    assert isinstance(analyzer.embedder, FaceEmbedder)


def test_group_photo_six_faces_with_landmarks(analyzer) -> None:  # noqa: ANN001
    faces = analyzer.analyze(cv2.imread(str(FACES / "group_6.jpg")))
    assert len(faces) == 6
    assert faces.data["landmarks"].shape == (6, 5, 2)
    assert faces.data["embedding"].shape == (6, 128)
    assert np.linalg.norm(faces.data["embedding"], axis=1) == pytest.approx(np.ones(6), abs=1e-5)
    inside = (faces.data["landmarks"] >= faces.xyxy[:, None, :2] - 5) & (
        faces.data["landmarks"] <= faces.xyxy[:, None, 2:] + 5
    )
    assert inside.all()
    left_eye_x, right_eye_x = faces.data["landmarks"][:, 0, 0], faces.data["landmarks"][:, 1, 0]
    assert (left_eye_x < right_eye_x).all()
    assert faces.source == "centerface@1+dlib-resnet-v1@1"


def test_verification_at_documented_threshold(analyzer, embeddings) -> None:  # noqa: ANN001
    t = analyzer.threshold
    assert t == pytest.approx(0.944)
    same, same_flag = analyzer.compare(embeddings["person_a_1"], embeddings["person_a_2"])
    diff_ab, diff_flag = analyzer.compare(embeddings["person_a_1"], embeddings["person_b_1"])
    diff_b2, _ = analyzer.compare(embeddings["person_a_2"], embeddings["person_b_1"])
    assert same_flag and not diff_flag
    assert verification_errors([same, diff_ab, diff_b2], [True, False, False], t) == (0, 0)


def test_quality_prefers_sharp_frontal_faces(analyzer) -> None:  # noqa: ANN001
    image = cv2.imread(str(FACES / "person_a_1.jpg"))
    faces = analyzer.analyze(image, embed=False)
    landmarks = faces.data["landmarks"][0]
    sharp = assess(image, landmarks)
    blurred = assess(cv2.GaussianBlur(image, (0, 0), 6), landmarks)
    assert sharp.score > 0.5 and abs(sharp.yaw) < 15
    assert blurred.sharpness < sharp.sharpness and blurred.score < sharp.score


def test_small_faces_are_dropped(analyzer) -> None:  # noqa: ANN001
    image = cv2.imread(str(FACES / "group_6.jpg"))
    tiny = cv2.resize(image, (image.shape[1] // 8, image.shape[0] // 8), interpolation=cv2.INTER_AREA)
    faces = analyzer.analyze(tiny)
    assert (faces.data["eye_distance"] * 2.5 >= analyzer.min_size).all()
