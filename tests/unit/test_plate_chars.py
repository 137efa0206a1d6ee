"""The character-level second opinion on plate reads (models/plates/chars.py): alignment, cut-outs, the classifier's
file and its feature, and its weight in the calibration fit. Synthetic inputs; the shipped classifier on rendered
characters."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.plates.chars import CLASSES, CharClassifier, char_columns, describe, forced_alignment
from models.plates.fit import Sample, fit, predict
from models.plates.grammar import parse_template
from models.plates.scoring import Candidates, PlateCalibration

BLANK = 3  # columns 0, 1, 2 are the characters "A", "B", "C"; 3 is the blank


def lattice(frames: list[int]) -> np.ndarray:
    probs = np.full((len(frames), 4), 0.02)
    probs[np.arange(len(frames)), frames] = 0.94
    return np.log(probs / probs.sum(axis=1, keepdims=True))


@pytest.mark.parametrize(
    ("frames", "labels", "spans"),
    [
        ([3, 0, 0, 3, 1, 3, 2, 2], [0, 1, 2], [(1, 2), (4, 4), (6, 7)]),
        ([0, 3, 0, 3, 3, 1], [0, 0, 1], [(0, 0), (2, 2), (5, 5)]),  # a repeat needs the blank between
        ([3, 3, 2, 3], [1], [(2, 2)]),  # forced: B where the lattice says C
    ],
)
def test_forced_alignment(frames: list[int], labels: list[int], spans: list[tuple[int, int]]) -> None:
    assert forced_alignment(lattice(frames), labels, BLANK) == spans


def test_char_columns_split_between_neighbours_and_stay_inside() -> None:
    columns = char_columns([(1, 1), (4, 4), (7, 7)], 8.0, 64)
    assert columns == [(0, 24), (24, 48), (48, 64)]  # centres 12, 36, 60; pitch 24; half 14.4 at the ends, clipped
    assert all(0 <= a < b <= 64 for a, b in columns)


def _classifier(d: int) -> CharClassifier:
    rng = np.random.default_rng(0)
    return CharClassifier(rng.normal(size=(d, 36)).astype(np.float32), np.zeros(36, np.float32),
                          np.zeros(d, np.float32), np.ones(d, np.float32))


def test_classifier_file_round_trip_and_checks(tmp_path: Path) -> None:
    d = describe([np.zeros((48, 20), np.uint8)]).shape[1]
    classifier = _classifier(d)
    classifier.save(tmp_path / "chars.npz")
    loaded = CharClassifier.load(tmp_path / "chars.npz")
    assert loaded is not None and loaded.classes == CLASSES
    cut = np.random.default_rng(1).integers(0, 255, (48, 18, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.log_probs([cut]), classifier.log_probs([cut]), atol=1e-4)
    assert np.exp(loaded.log_probs([cut])).sum() == pytest.approx(1.0, abs=1e-4)
    assert CharClassifier.load(tmp_path / "absent.npz") is None
    with pytest.raises(ValueError, match="do not fit"):
        CharClassifier(np.zeros((d, 35)), np.zeros(36), np.zeros(d), np.ones(d))


def test_feature_is_relative_to_the_best_text() -> None:
    classifier = _classifier(4)
    table = np.log(np.full((3, 36), 0.01))
    table[2, CLASSES.index("Q")] = np.log(0.6)
    table[2, CLASSES.index("O")] = np.log(0.1)
    feature = classifier.feature(table, ("ABO", "ABQ", "ABCD", "AB-"), "ABO")
    assert feature[0] == 0.0 and feature[1] == pytest.approx(np.log(6.0))
    assert feature[2] == 0.0 and feature[3] == 0.0  # another length; a character outside the classes


def test_fit_learns_the_weight_of_a_helpful_opinion_and_ignores_a_useless_one() -> None:
    """Plates where the recogniser prefers the wrong text by 1 nat and the opinion favours the truth by 2: the
    fitted char_weight lets the truth win; with no opinion (zeros) the weight stays 0."""
    pattern = parse_template("AAADDD", "ar")
    samples = []
    for k in range(12):
        texts = ("ABO123", "ABQ123", "ABD123")
        ll = np.array([-1.0, -2.0, -4.0])
        chars = np.array([0.0, 2.0, -1.0])
        samples.append(Sample(Candidates(texts, (pattern,) * 3, ll, chars), 1, f"p{k}"))
    calibration = fit(samples, strength=1.0)
    assert calibration.char_weight > 0.5
    assert all(predict(s, calibration)[0] == 1 for s in samples)
    blind = [Sample(Candidates(s.candidates.texts, s.candidates.patterns, s.candidates.log_likelihood), 1, s.group)
             for s in samples]
    assert fit(blind, strength=1.0).char_weight == 0.0
    restored = PlateCalibration.from_dict(calibration.to_dict())
    assert restored.char_weight == calibration.char_weight
    with pytest.raises(ValueError, match="char_weight"):
        PlateCalibration.from_dict({"weight": 1.0, "char_weight": -1.0})


def test_shipped_classifier_reads_rendered_characters() -> None:
    """The shipped weights (trained on degraded renders) name clean renders of a different seed and size."""
    classifier = CharClassifier.load()
    assert classifier is not None, "models/plates/chars.npz is missing: run benchmarks/models/plate_chars.py --write"
    cuts = []
    for ch in CLASSES:
        image = np.full((48, 40), 230, np.uint8)
        cv2.putText(image, ch, (8, 38), cv2.FONT_HERSHEY_SIMPLEX, 1.1, 20, 3, cv2.LINE_AA)
        cuts.append(image)
    predicted = "".join(CLASSES[i] for i in classifier.log_probs(cuts).argmax(axis=1))
    right = sum(p == t for p, t in zip(predicted, CLASSES, strict=True))
    assert right >= 30, predicted
