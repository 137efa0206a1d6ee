"""Face calibration maths (hand-worked ROC/EER/threshold cases), the ROC plot, and the MobileFaceNet embedder on the
installed TFLite file (fails, never skips, without models)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.faces.calibration import (
    calibrate,
    collect,
    identity_images,
    pair_similarities,
    plot_roc,
    plot_similarities,
    roc,
)

FACES = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "faces"


def test_separable_pairs_have_zero_eer_and_a_threshold_in_the_gap() -> None:
    sims = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    same = np.array([True, True, True, False, False, False])
    cal = calibrate(sims, same, far_target=0.0)
    assert cal.eer == 0.0 and cal.eer_threshold == pytest.approx(0.5)
    assert cal.margin == pytest.approx(0.4)
    assert 0.3 < cal.threshold_at_far <= 0.7 and cal.tar_at_far == 1.0
    assert cal.errors(0.5) == (0, 0) and cal.errors(0.85) == (2, 0)


def test_overlapping_pairs() -> None:
    # genuine 0.9 0.6 0.4, impostor 0.5 0.3 0.1: at 0.5 one genuine is rejected and one impostor accepted
    sims = np.array([0.9, 0.6, 0.4, 0.5, 0.3, 0.1])
    same = np.array([True, True, True, False, False, False])
    thresholds, far, tar = roc(sims[same], sims[~same])
    assert far[0] == 0 and tar[0] == 0 and far[-1] == 1 and tar[-1] == 1
    cal = calibrate(sims, same, far_target=0.0)
    assert cal.eer == pytest.approx(1 / 3) and cal.margin == pytest.approx(-0.1)
    assert cal.errors(cal.threshold_at_far)[1] == 0  # no false accept at the FAR-0 threshold
    assert cal.tar_at_far == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="genuine and impostor"):
        calibrate(sims[same], same[same])


def test_roc_plot_is_a_png(tmp_path: Path) -> None:
    sims = np.array([0.9, 0.6, 0.4, 0.5, 0.3, 0.1])
    same = np.array([True, True, True, False, False, False])
    out = plot_roc(tmp_path / "roc.png", {"demo": calibrate(sims, same)})
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > 600 and (image < 250).any()
    hist = cv2.imread(str(plot_similarities(tmp_path / "sims.png", {"a": calibrate(sims, same), "b": calibrate(sims, same)})))
    assert hist is not None and hist.shape[0] > 300


def test_identity_folders(tmp_path: Path) -> None:
    for person, files in {"ann": ["1.jpg", "2.png"], "bob": ["x.jpg"], "empty": []}.items():
        (tmp_path / person).mkdir()
        for f in files:
            (tmp_path / person / f).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    assert {k: [p.name for p in v] for k, v in identity_images(tmp_path).items()} == {
        "ann": ["1.jpg", "2.png"], "bob": ["x.jpg"]}


@pytest.fixture(scope="module")
def mobilefacenet():  # noqa: ANN201
    from models.faces.pipeline import FaceAnalyzer
    from models.zoo import ModelZoo

    zoo = ModelZoo()
    return FaceAnalyzer(zoo.face_detector(), zoo.face_embedder("mobilefacenet"))


def test_mobilefacenet_verifies_the_dev_faces(mobilefacenet) -> None:  # noqa: ANN001
    embedder = mobilefacenet.embedder
    assert embedder.dimension == 192 and embedder.chip_size == 112 and embedder.model_id == "mobilefacenet@1"
    layout = {name: [FACES / f"{name}_{n}.jpg" for n in (1, 2) if (FACES / f"{name}_{n}.jpg").is_file()]
              for name in ("person_a", "person_b")}
    faces = collect(mobilefacenet, layout, augment=False)
    assert [f.identity for f in faces] == ["person_a", "person_a", "person_b"]
    assert all(abs(float(np.linalg.norm(f.embedding)) - 1) < 1e-4 for f in faces)
    sims, same = pair_similarities(faces)
    genuine, impostor = sims[same], sims[~same]
    assert genuine.min() >= embedder.threshold > impostor.max()  # the registry's threshold separates them


def test_mobilefacenet_batches_beyond_its_fixed_batch(mobilefacenet) -> None:  # noqa: ANN001
    rng = np.random.default_rng(1)
    chips = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    together = mobilefacenet.embedder.embed_chips(chips)
    alone = np.concatenate([mobilefacenet.embedder.embed_chips([c]) for c in chips])
    assert together.shape == (3, 192)
    np.testing.assert_allclose(together, alone, atol=1e-5)
