"""The model-level throughput cases behind ``tubeline models bench`` and ``benchmarks/models/throughput.py``:
one case per installed model, feeding it batches built from one sample frame."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from models.benchmark import BenchResult, bench

logger = logging.getLogger(__name__)


def _provider(obj: Any) -> str:
    model = getattr(obj, "model", None)
    providers = getattr(model, "providers", None)
    return providers[0].replace("ExecutionProvider", "") if providers else "dlib-cpu"


def _face_chip(frame: np.ndarray, size: int) -> np.ndarray:
    """A chip-sized input (content does not change the embedder's cost)."""
    return np.ascontiguousarray(cv2.resize(frame, (size, size)))


def _batches(run: Callable[[list[np.ndarray]], object], item: np.ndarray) -> Callable[[int], Callable[[], object]]:
    """Batch size n -> a call of ``run`` on n copies of ``item``."""
    return lambda n: lambda: run([item] * n)


def model_cases(
    zoo: Any, frame: np.ndarray, ids: Sequence[str] | None, batches: Sequence[int], iterations: int
) -> list[BenchResult]:
    """Benchmark each requested (default: every installed) model on batches of ``frame``-derived inputs."""
    from models.install import verify

    installed = {o.model_id for o in verify(zoo.registry, zoo.model_dir) if o.status == "ok"}
    specs = [zoo.registry.get(i) for i in ids] if ids else [s for s in zoo.registry if s.id in installed]
    line = np.ascontiguousarray(frame[200:248, 200:360])
    results: list[BenchResult] = []
    for spec in specs:
        obj: Any
        if spec.task == "detect":
            obj = zoo.detector(spec.id)
            runner = _batches(obj.detect_batch, frame)
        elif spec.task == "plate-detect":
            obj = zoo.plate_detector(spec.id)
            runner = _batches(obj.detect_batch, frame)
        elif spec.task == "plate-read":
            obj = zoo.plate_reader(spec.id)
            runner = _batches(obj.line_probs, line)
        elif spec.task == "face-detect":
            obj = zoo.face_detector(spec.id)
            runner = _batches(obj.detect_batch, frame)
        else:
            obj = zoo.face_embedder(spec.id)
            runner = _batches(obj.embed_chips, _face_chip(frame, obj.chip_size))
        results += bench(spec.ref, _provider(obj), runner, batches, iterations)
    return results
