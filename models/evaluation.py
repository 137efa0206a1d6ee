"""Scoring rules used by the accuracy harnesses in ``benchmarks/models`` (and their unit tests).

* Plates: exact match of the whole normalised string, province character included. A ``?`` in a label
  marks a character that is unreadable in the photo: it matches any one character, or nothing when it
  leads the label (a reader may honestly omit an unreadable province).
* Detection: greedy one-to-one matching by IoU within a class, highest score first.
* Face verification: errors at a threshold over labelled pairs.
* Calibration: expected calibration error of confidences against right/wrong outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.plates.grammar import clean_read
from pipeline.core import box_iou


def plate_matches(prediction: str, label: str) -> bool:
    pred, want = clean_read(prediction), label.strip()
    if "?" not in want:
        return pred == clean_read(want)
    if want.startswith("?") and len(pred) == len(want) - 1:
        pred = "?" + pred
    return len(pred) == len(want) and all(w == "?" or w == p for p, w in zip(pred, want, strict=True))


@dataclass(frozen=True)
class MatchCounts:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


def match_boxes(
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    pred_classes: Sequence[str],
    true_boxes: np.ndarray,
    true_classes: Sequence[str],
    iou: float = 0.5,
    difficult: Sequence[bool] | None = None,
) -> MatchCounts:
    """Greedy matching, best score first; a prediction matches an unused truth of its class with IoU ≥ ``iou``.

    ``difficult`` truths (heavily occluded or truncated) are optional: matching one is neither a true nor
    a false positive, and missing one is not a false negative (PASCAL VOC's rule).
    """
    pred_boxes = np.asarray(pred_boxes, dtype=np.float32).reshape(-1, 4)
    true_boxes = np.asarray(true_boxes, dtype=np.float32).reshape(-1, 4)
    hard = np.asarray(difficult if difficult is not None else [False] * len(true_boxes), dtype=bool)
    overlaps = box_iou(pred_boxes, true_boxes)
    used = np.zeros(len(true_boxes), dtype=bool)
    tp = ignored = 0
    for i in np.argsort(-np.asarray(pred_scores, dtype=np.float32), kind="stable"):
        same_class = np.asarray([c == pred_classes[i] for c in true_classes], dtype=bool)
        ok = same_class & (overlaps[i] >= iou) & ~used
        easy, hard_hits = ok & ~hard, ok & hard
        if easy.any():
            best = int(np.argmax(np.where(easy, overlaps[i], -1.0)))
            used[best] = True
            tp += 1
        elif hard_hits.any():
            used[int(np.argmax(np.where(hard_hits, overlaps[i], -1.0)))] = True
            ignored += 1
    return MatchCounts(tp, len(pred_boxes) - tp - ignored, int(np.sum(~hard)) - tp)


def verification_errors(
    similarities: Sequence[float], same: Sequence[bool], threshold: float
) -> tuple[int, int]:
    """(false rejections of same-person pairs, false acceptances of different-person pairs)."""
    sims = np.asarray(similarities, dtype=np.float64)
    labels = np.asarray(same, dtype=bool)
    accepted = sims >= threshold
    return int(np.sum(labels & ~accepted)), int(np.sum(~labels & accepted))


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: over equal-width confidence bins, the share of samples times |mean confidence − accuracy|.

    0 means that among reads given confidence c, a share c is right; a reader whose wrong reads sit at 0.99
    scores high. Bins are (lo, hi], the first one [0, 0.1].
    """
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if not len(conf):
        return 0.0
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(conf[mask].mean() - right[mask].mean())
    return float(error)
