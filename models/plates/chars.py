"""A character-level second opinion on plate reads: where each character sits in the line, and what a small
classifier trained on synthetic characters makes of it.

PP-OCRv4 reads some letters of Latin plate fonts with confidence as their look-alikes (``Q`` as ``O``, ``D`` as
``O``, ``U`` as ``I``): it saw few such plates. This module gives the ranking (:mod:`models.plates.scoring`) an
independent opinion per character:

1. **Where.** The CTC forced alignment of the best candidate text on the one-line reading gives each character's
   frames (PP-OCRv4 emits one frame per 8 input pixels); a character spans from half-way to its left neighbour's
   frames to half-way to its right neighbour's, at most ``0.6 ×`` the median character pitch either side of its
   centre, the full line height.
2. **What.** Each cut-out is scaled to 24×40 grey, described by a HOG (unsigned gradients: white-on-black and
   black-on-white plates look the same) and classified by multinomial logistic regression over 36 classes
   (A–Z, 0–9). The weights (``chars.npz`` beside this module, numbers only, loaded with ``allow_pickle=False``) are
   trained only on synthetic renders of OpenCV's built-in Hershey fonts — monoline sans faces close to plate
   lettering — with blur, noise, low resolution, condensing, shear and neighbouring characters cut in at the
   edges (``benchmarks/models/plate_chars.py``, which also measures it on the real dev plate characters, held
   out: none of them is used to train it).
3. **Feature.** For a candidate text of the best candidate's length, ``Σ log p(character | cut-out)`` minus the
   same for the best candidate (0 for the best one and for texts of another length). How much it counts is one
   more weight of the calibration, fitted with the others by nested, grouped cross-validation
   (``benchmarks/models/plate_calibration.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

CLASSES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CHAR_SIZE = (24, 40)  # width, height of a character cut-out
WEIGHTS_FILE = Path(__file__).resolve().parent / "chars.npz"
MAX_WEIGHTS_BYTES = 2_000_000


def hog() -> cv2.HOGDescriptor:
    """The descriptor the classifier was trained with: 4×4 cells in 8×8 blocks side by side, 9 unsigned bins
    (540 numbers for a 24×40 cut-out)."""
    return cv2.HOGDescriptor(CHAR_SIZE, (8, 8), (8, 8), (4, 4), 9)


def describe(cutouts: Sequence[np.ndarray]) -> np.ndarray:
    """N×D HOG features of BGR or grey character cut-outs (any size; scaled to ``CHAR_SIZE``)."""
    descriptor = hog()
    rows = []
    for cut in cutouts:
        grey = cv2.cvtColor(cut, cv2.COLOR_BGR2GRAY) if cut.ndim == 3 else cut
        grey = cv2.resize(grey, CHAR_SIZE, interpolation=cv2.INTER_AREA)
        low, high = int(grey.min()), int(grey.max())
        grey = ((grey.astype(np.float32) - low) * (255.0 / max(1, high - low))).astype(np.uint8)
        rows.append(np.asarray(descriptor.compute(grey), dtype=np.float32).ravel())
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def forced_alignment(log_probs: np.ndarray, labels: Sequence[int], blank: int) -> list[tuple[int, int]]:
    """(first frame, last frame) of each label on the best CTC path that spells ``labels`` (Viterbi)."""
    steps, length = len(log_probs), len(labels)
    states = 2 * length + 1
    ext = np.full(states, blank, dtype=np.int64)
    ext[1::2] = labels
    score = np.full(states, -np.inf)
    score[:2] = log_probs[0, ext[:2]]
    back = np.zeros((steps, states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    skip = np.zeros(states, dtype=bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    for t in range(1, steps):
        one = np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        stacked = np.stack([score, one, two])
        back[t] = stacked.argmax(axis=0)
        score = stacked.max(axis=0) + log_probs[t, ext]
    state = states - 1 if score[-1] >= score[-2] else states - 2
    spans: dict[int, list[int]] = {}
    for t in range(steps - 1, -1, -1):
        if state % 2 == 1:
            spans.setdefault(state // 2, []).append(t)
        state -= int(back[t, state]) if t > 0 else 0
    return [(min(spans.get(k, [0])), max(spans.get(k, [0]))) for k in range(length)]


def char_columns(spans: Sequence[tuple[int, int]], pixels_per_frame: float, width: int) -> list[tuple[int, int]]:
    """Column range of each character in a line ``width`` px wide, from its frames (module docstring, step 1)."""
    centres = np.array([(a + b + 1) / 2 * pixels_per_frame for a, b in spans])
    pitch = float(np.median(np.diff(centres))) if len(centres) > 1 else 0.5 * width
    half = 0.6 * pitch
    out = []
    for i, c in enumerate(centres):
        left = c - min(half, (c - centres[i - 1]) / 2) if i > 0 else c - half
        right = c + min(half, (centres[i + 1] - c) / 2) if i + 1 < len(centres) else c + half
        x0, x1 = int(max(0, np.floor(left))), int(min(width, np.ceil(right)))
        out.append((x0, max(x1, x0 + 1)))
    return out


class CharClassifier:
    """Multinomial logistic regression over HOG features (module docstring, step 2)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 classes: str = CLASSES) -> None:
        if weights.shape != (len(mean), len(classes)) or bias.shape != (len(classes),):
            msg = f"character classifier: weights {weights.shape} do not fit {len(mean)} features × {len(classes)}"
            raise ValueError(msg)
        self.weights, self.bias, self.mean, self.scale, self.classes = weights, bias, mean, scale, classes
        self.index = {ch: i for i, ch in enumerate(classes)}

    @classmethod
    def load(cls, path: Path | None = None) -> CharClassifier | None:
        """The shipped classifier (``chars.npz``), or None when there is no file."""
        path = path or WEIGHTS_FILE
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_WEIGHTS_BYTES:
            msg = f"character classifier {path} is larger than {MAX_WEIGHTS_BYTES} bytes"
            raise ValueError(msg)
        with np.load(path, allow_pickle=False) as data:
            return cls(data["weights"], data["bias"], data["mean"], data["scale"], str(data["classes"]))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32),
                            mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                            classes=np.str_(self.classes))

    def log_probs_of(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.scale) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def log_probs(self, cutouts: Sequence[np.ndarray]) -> np.ndarray:
        """N×36 log-probabilities of the classes for character cut-outs."""
        if not cutouts:
            return np.zeros((0, len(self.classes)))
        return self.log_probs_of(describe(cutouts))

    def opinion(self, line: np.ndarray, log_probs: np.ndarray, text: str, alphabet_index: dict[str, int],
                blank: int) -> np.ndarray | None:
        """Per character of ``text``, the log-probabilities of all classes for its cut-out of ``line`` (the line
        image the folded CTC ``log_probs`` were read from); None when a character is not in the classes."""
        if not text or any(ch not in self.index or ch not in alphabet_index for ch in text):
            return None
        spans = forced_alignment(log_probs, [alphabet_index[ch] for ch in text], blank)
        columns = char_columns(spans, line.shape[1] / max(1, len(log_probs)), line.shape[1])
        return self.log_probs([line[:, a:b] for a, b in columns])

    def feature(self, table: np.ndarray, texts: Sequence[str], best: str) -> np.ndarray:
        """Σ log p(character) of each text minus the best text's, over the positions of ``table`` (0 for texts
        of another length or with characters outside the classes)."""
        columns = np.arange(len(best))
        base = float(table[columns, [self.index[ch] for ch in best]].sum())
        out = np.zeros(len(texts))
        for i, text in enumerate(texts):
            if len(text) == len(best) and all(ch in self.index for ch in text):
                out[i] = float(table[columns, [self.index[ch] for ch in text]].sum()) - base
        return out
