"""The face pipeline: detect (boxes + five landmarks) → quality → align → embed, in one call.

Faces whose eye distance is under ``min_size`` / 2.5 pixels (i.e. a face box roughly under ``min_size``)
are dropped before embedding: at that resolution identity vectors are noise.
"""

from __future__ import annotations

import logging

import numpy as np

from models.faces.alignment import FaceQuality, assess
from models.faces.embedders import cosine
from models.protocols import FaceDetector, FaceEmbedder
from pipeline.core import Detections

logger = logging.getLogger(__name__)

QUALITY_COLUMNS = ("quality", "eye_distance", "sharpness", "yaw", "pitch", "roll")


class FaceAnalyzer:
    """Detector + quality + embedder; results carry ``landmarks``, quality columns and ``embedding``."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, min_size: int = 24) -> None:
        self.detector = detector
        self.embedder = embedder
        self.min_size = min_size
        self.model_id = f"{detector.model_id}+{embedder.model_id}"

    @property
    def threshold(self) -> float:
        return self.embedder.threshold

    def analyze(self, image: np.ndarray, embed: bool = True) -> Detections:
        faces = self.detector.detect(image)
        qualities = [assess(image, lm) for lm in faces.data["landmarks"]]
        keep = np.asarray([q.eye_distance * 2.5 >= self.min_size for q in qualities], dtype=bool)
        faces = faces[keep] if len(faces) else faces
        qualities = [q for q, k in zip(qualities, keep, strict=True) if k]
        faces = faces.with_data(**quality_columns(qualities))
        if embed:
            faces = self.embedder.embed(image, faces)
        return faces.replace(source=self.model_id)

    def best_embedding(self, image: np.ndarray) -> tuple[np.ndarray, Detections] | None:
        """Embedding of the highest-quality face in ``image`` (None if there is no usable face)."""
        faces = self.analyze(image)
        if not len(faces):
            return None
        best = int(np.argmax(faces.data["quality"] + 1e-3 * faces.area / max(1.0, float(faces.area.max()))))
        return faces.data["embedding"][best], faces[best]

    def compare(self, a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
        similarity = cosine(a, b)
        return similarity, similarity >= self.threshold


def quality_columns(qualities: list[FaceQuality]) -> dict[str, np.ndarray]:
    return {
        "quality": np.asarray([q.score for q in qualities], dtype=np.float32),
        "eye_distance": np.asarray([q.eye_distance for q in qualities], dtype=np.float32),
        "sharpness": np.asarray([q.sharpness for q in qualities], dtype=np.float32),
        "yaw": np.asarray([q.yaw for q in qualities], dtype=np.float32),
        "pitch": np.asarray([q.pitch for q in qualities], dtype=np.float32),
        "roll": np.asarray([q.roll for q in qualities], dtype=np.float32),
    }
