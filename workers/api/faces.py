"""The query face of a face search: check the upload's header, decode it, find the face, gate its quality, embed it.

The upload's format and pixel count are read from its header before anything is decoded
(:mod:`workers.api.images`: JPEG, PNG, WebP or BMP within ``api.max_image_pixels``), and decoding happens
under the same lock as the analysis, so one process holds at most one decoded query image at a time.

The face pipeline of the model zoo (detector → quality → alignment → embedder) is loaded on first
use and shared by all requests (calls are serialised: ONNX Runtime sessions are thread-safe, but
one search at a time keeps the API's CPU use predictable). A query is refused — with the reason —
when the image does not decode, shows no face, shows more than one usable face (crop it to the
person), or its face is below ``api.face_min_quality``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.config.models import ModelsConfig
from workers.api.images import ImageRefused, check_image

log = logging.getLogger(__name__)

MIN_EYE_DISTANCE = 20.0
MIN_SHARPNESS = 30.0
MAX_YAW = 35.0
MAX_PITCH = 0.3


class FaceRefused(ValueError):
    """The query image cannot be used for face search; the message says why (``status``: the HTTP status)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class QueryFace:
    embedding: np.ndarray
    quality: float
    components: dict[str, float]
    faces_in_image: int
    model_id: str
    threshold: float
    image_sha256: str


def _shortcomings(components: dict[str, float]) -> list[str]:
    reasons = []
    if components["eye_distance"] < MIN_EYE_DISTANCE:
        reasons.append(f"too small (eyes {components['eye_distance']:.0f} px apart, want ≥ {MIN_EYE_DISTANCE:.0f})")
    if components["sharpness"] < MIN_SHARPNESS:
        reasons.append(f"blurred (sharpness {components['sharpness']:.0f}, want ≥ {MIN_SHARPNESS:.0f})")
    if abs(components["yaw"]) > MAX_YAW:
        reasons.append(f"turned away (yaw {components['yaw']:.0f}°)")
    if abs(components["pitch"]) > MAX_PITCH:
        reasons.append("tilted up or down")
    return reasons


class FaceQueries:
    """Turns uploaded images into query embeddings, with a quality gate."""

    def __init__(self, analyzer_factory: Callable[[], Any], min_quality: float, max_pixels: int = 40_000_000) -> None:
        self._factory = analyzer_factory
        self._analyzer: Any = None
        self._lock = threading.Lock()
        self.min_quality = min_quality
        self.max_pixels = max_pixels

    def analyzer(self) -> Any:
        if self._analyzer is None:
            self._analyzer = self._factory()
        return self._analyzer

    def analyze(self, data: bytes) -> QueryFace:
        try:
            header = check_image(data, self.max_pixels)
        except ImageRefused as exc:
            raise FaceRefused(str(exc), exc.status) from None
        with self._lock:
            image = _decode(data, header.width, header.height)
            analyzer = self.analyzer()
            faces = analyzer.analyze(image)
            del image
        if not len(faces):
            msg = "no usable face found in the image (none detected, or too small to recognise)"
            raise FaceRefused(msg)
        if len(faces) > 1:
            msg = f"the image shows {len(faces)} faces; crop it to the one person you are looking for"
            raise FaceRefused(msg)
        components = {name: round(float(faces.data[name][0]), 3)
                      for name in ("eye_distance", "sharpness", "yaw", "pitch", "roll")}
        quality = round(float(faces.data["quality"][0]), 3)
        if quality < self.min_quality:
            why = "; ".join(_shortcomings(components)) or "poor overall"
            msg = f"the query face's quality {quality:.2f} is below the minimum {self.min_quality:.2f}: {why}"
            raise FaceRefused(msg)
        return QueryFace(
            embedding=np.asarray(faces.data["embedding"][0], dtype=np.float32),
            quality=quality,
            components=components,
            faces_in_image=len(faces),
            model_id=str(analyzer.embedder.model_id),
            threshold=float(analyzer.threshold),
            image_sha256=hashlib.sha256(data).hexdigest(),
        )


def _decode(data: bytes, width: int, height: int) -> np.ndarray:
    """The BGR image; FaceRefused when it does not decode or decodes to other dimensions than its header said."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        msg = "the upload does not decode as the image its header announces (corrupt or truncated)"
        raise FaceRefused(msg)
    if image.shape[:2] not in ((height, width), (width, height)):  # (EXIF orientation may turn a JPEG)
        msg = "the image decodes to other dimensions than its header says; refused"
        raise FaceRefused(msg)
    return image


def zoo_analyzer_factory(models_config: ModelsConfig) -> Callable[[], Any]:
    """A factory that loads the zoo's face analyzer (imports the model code only when called)."""

    def build() -> Any:
        from models.zoo import ModelZoo

        log.info("loading the face pipeline for face search")
        return ModelZoo(models_config).face_analyzer()

    return build
