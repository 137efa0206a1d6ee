"""Face embedders behind :class:`models.protocols.FaceEmbedder`: dlib's ResNet (via ``dlib-bin``) and any
ArcFace-style ONNX model (112×112 RGB, (x − 127.5)/127.5, one embedding output).

Both take aligned chips (see :mod:`models.faces.alignment`) and return L2-normalised float32 vectors, so
cosine similarity is a dot product and one threshold applies per model (``threshold``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.faces.alignment import ARCFACE_112, DLIB_150, align
from models.registry import InputSpec
from models.runtime import ModelError, OnnxModel
from pipeline.core import Detections

logger = logging.getLogger(__name__)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(l2_normalise(a).ravel(), l2_normalise(b).ravel()))


class _ChipEmbedder:
    model_id: str
    chip_size: int
    template: np.ndarray
    dimension: int
    threshold: float

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def chips(self, image: np.ndarray, faces: Detections) -> list[np.ndarray]:
        return [align(image, lm, self.template, self.chip_size) for lm in faces.data["landmarks"]]

    def embed(self, image: np.ndarray, faces: Detections) -> Detections:
        """``faces`` (with ``landmarks``) plus ``data["embedding"]`` N×D."""
        if "landmarks" not in faces.data:
            msg = f"{self.model_id}: faces need a 'landmarks' column (N×5×2) for alignment"
            raise ValueError(msg)
        vectors = (
            self.embed_chips(self.chips(image, faces))
            if len(faces)
            else np.zeros((0, self.dimension), np.float32)
        )
        return faces.with_data(embedding=vectors)


class DlibEmbedder(_ChipEmbedder):
    """dlib ``face_recognition_model_v1`` (ResNet-34, 128-d) on 150×150 chips."""

    chip_size = 150
    template = DLIB_150
    dimension = 128

    def __init__(self, path: Path, model_id: str, threshold: float) -> None:
        import dlib

        if not Path(path).is_file():
            msg = f"{model_id}: {path} is missing; run `tubeline models install`"
            raise ModelError(msg)
        self.net = dlib.face_recognition_model_v1(str(path))
        self.model_id = model_id
        self.threshold = threshold
        self.embed_chips([np.zeros((self.chip_size, self.chip_size, 3), np.uint8)])  # warm-up

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dimension), np.float32)
        rgb = [np.ascontiguousarray(chip[..., ::-1]) for chip in chips]
        vectors = np.asarray([np.asarray(v) for v in self.net.compute_face_descriptor(rgb)], dtype=np.float32)
        return l2_normalise(vectors)


class ArcFaceEmbedder(_ChipEmbedder):
    """An ArcFace-style ONNX embedder (InsightFace layout); the template is the standard 112×112 one."""

    template = ARCFACE_112

    def __init__(self, model: OnnxModel, model_id: str, spec: InputSpec, threshold: float) -> None:
        self.model = model
        self.model_id = model_id
        self.spec = spec
        self.threshold = threshold
        size = model.input_shape[-1]
        self.chip_size = int(size) if isinstance(size, int) else 112
        self.template = ARCFACE_112 * (self.chip_size / 112.0)
        self.dimension = int(model.outputs[0].shape[-1])

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dimension), np.float32)
        batch = np.stack([chip[..., ::-1] if self.spec.color == "RGB" else chip for chip in chips]).astype(
            np.float32
        )
        mean, std = np.array(self.spec.mean, dtype=np.float32), np.array(self.spec.std, dtype=np.float32)
        normalised = (batch - mean) / std
        (vectors,) = self.model.run_batched(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))[:1]
        return l2_normalise(vectors)
