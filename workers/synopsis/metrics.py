"""Synopsis quality figures, computed exactly from the boxes (not from the optimiser's grid).

- condensation ratio: source window length / synopsis length;
- collision ratio: Σ over frames of Σ over pairs of boxes of their intersection area, divided by
  Σ over frames of Σ box areas (0: nothing overlaps; a pair overlapping completely in every frame
  gives 0.5); also computed on the source timeline, where objects overlap naturally;
- chronology violations: pairs of objects shown in the opposite order of their original start
  (ties in either time do not count), and that number as a fraction of all pairs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from workers.synopsis.sources import TrackPath


def pair_overlap(boxes: np.ndarray) -> float:
    """Σ over unordered pairs of the intersection area of ``(n, 4)`` boxes."""
    n = len(boxes)
    if n < 2:
        return 0.0
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return float(np.triu(inter, 1).sum())


def box_area(boxes: np.ndarray) -> float:
    return float((np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)).sum())


def collision_ratio(frames: Iterable[np.ndarray]) -> float:
    """Overlapping area / total box area over ``frames`` (each an ``(n, 4)`` array of the boxes shown)."""
    overlap = total = 0.0
    for boxes in frames:
        if len(boxes):
            overlap += pair_overlap(boxes)
            total += box_area(boxes)
    return overlap / total if total > 0 else 0.0


def source_frames(paths: list[TrackPath], fps: float) -> list[np.ndarray]:
    """The boxes of ``paths`` on the original timeline at ``fps`` (analysed-frame pixels)."""
    if not paths:
        return []
    t0 = min(p.start_s for p in paths)
    per_frame: dict[int, list[np.ndarray]] = {}
    for path in paths:
        first = int(np.ceil((path.start_s - t0) * fps - 1e-6))
        last = int(np.floor((path.end_s - t0) * fps + 1e-6))
        if last < first:
            last = first
        times = np.clip(t0 + np.arange(first, last + 1) / fps, path.start_s, path.end_s)
        boxes = np.stack([np.interp(times, path.times, path.boxes[:, c]) for c in range(4)], axis=1)
        for n, box in zip(range(first, last + 1), boxes, strict=True):
            per_frame.setdefault(n, []).append(box)
    return [np.asarray(v) for _, v in sorted(per_frame.items())]


def reversed_pairs(original: np.ndarray, shown: np.ndarray) -> int:
    """Pairs (i, j) with original[i] < original[j] but shown[i] > shown[j]."""
    count = 0
    for start in range(0, len(original), 1024):
        o, s = original[start:start + 1024, None], shown[start:start + 1024, None]
        count += int(((original[None, :] > o) & (shown[None, :] < s)).sum())
    return count
