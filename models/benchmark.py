"""Throughput measurement shared by ``tubeline models bench`` and ``benchmarks/models/throughput.py``.

Each case times a callable that processes one batch; results are images per second and per-batch
latency percentiles. Timing uses ``time.perf_counter`` after warm-up calls that are not counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchResult:
    model: str
    provider: str
    batch: int
    iterations: int
    images_per_s: float
    p50_ms: float
    p99_ms: float

    def row(self) -> list[str]:
        return [
            self.model,
            self.provider,
            str(self.batch),
            str(self.iterations),
            f"{self.images_per_s:.1f}",
            f"{self.p50_ms:.1f}",
            f"{self.p99_ms:.1f}",
        ]


HEADER = ["model", "provider", "batch", "iters", "images/s", "p50 ms", "p99 ms"]


def time_calls(
    run: Callable[[], object], batch: int, iterations: int = 20, warmup: int = 2, min_seconds: float = 0.0
) -> tuple[float, float, float, int]:
    """(images/s, p50 ms, p99 ms, iterations) of ``run``, which processes ``batch`` images per call."""
    for _ in range(warmup):
        run()
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < iterations or (time.perf_counter() - started) < min_seconds:
        t0 = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - t0)
    total = sum(latencies)
    ms = np.asarray(latencies) * 1000.0
    return (
        batch * len(latencies) / total,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        len(latencies),
    )


def bench(
    name: str,
    provider: str,
    run_batch: Callable[[int], Callable[[], object]],
    batches: Sequence[int],
    iterations: int,
) -> list[BenchResult]:
    """One result per batch size; ``run_batch(n)`` returns a callable that processes a batch of ``n``."""
    results = []
    for n in batches:
        ips, p50, p99, iters = time_calls(run_batch(n), n, iterations)
        results.append(BenchResult(name, provider, n, iters, ips, p50, p99))
        logger.info("%s batch %d: %.1f images/s", name, n, ips)
    return results


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns (what the CLI and harnesses print)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def sample_frame(path: str | None = None, index: int = 100) -> np.ndarray:
    """A frame of ``path`` (a video or image), or a synthetic 768×576 test pattern if none is given."""
    if path:
        if path.lower().endswith((".avi", ".mp4", ".mkv", ".mov")):
            cap = cv2.VideoCapture(path)
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            cap.release()
            if ok:
                return frame
        image = cv2.imread(path)
        if image is not None:
            return image
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (576, 768, 3), dtype=np.uint8)
