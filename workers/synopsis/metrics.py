"""Synopsis quality figures, computed exactly from the boxes (not from the optimiser's grid).

- condensation ratio: source window length / synopsis length;
- collision ratio: the share of the objects' area that another object overlaps — over all frames,
  Σ of the pixels of each box that lie in any other box, divided by Σ box areas (0: nothing overlaps,
  1: every object is always covered by another); also computed on the source timeline, where objects
  overlap naturally;
- chronology violations: pairs of objects shown in the opposite order of their original start
  (ties in either time do not count), and that number as a fraction of all pairs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from workers.synopsis.sources import TrackPath


def _coverage(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact coverage of ``(n, 4)`` boxes on their compressed grid: per cell, how many boxes cover it and its area."""
    xs = np.unique(np.concatenate([boxes[:, 0], boxes[:, 2]]))
    ys = np.unique(np.concatenate([boxes[:, 1], boxes[:, 3]]))
    x1, x2 = np.searchsorted(xs, boxes[:, 0]), np.searchsorted(xs, boxes[:, 2])
    y1, y2 = np.searchsorted(ys, boxes[:, 1]), np.searchsorted(ys, boxes[:, 3])
    diff = np.zeros((len(ys) + 1, len(xs) + 1), np.int64)
    np.add.at(diff, (y1, x1), 1)
    np.add.at(diff, (y1, x2), -1)
    np.add.at(diff, (y2, x1), -1)
    np.add.at(diff, (y2, x2), 1)
    count = diff.cumsum(axis=0).cumsum(axis=1)[: len(ys) - 1, : len(xs) - 1]
    return count, np.outer(np.diff(ys), np.diff(xs))


def collision_ratio(frames: Iterable[np.ndarray]) -> float:
    """Overlapped object area / object area over ``frames`` (each an ``(n, 4)`` array of the boxes shown)."""
    overlapped = total = 0.0
    for boxes in frames:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            continue
        widths = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
        heights = np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        total += float((widths * heights).sum())
        if len(boxes) > 1:
            count, area = _coverage(boxes)
            overlapped += float((count * area)[count >= 2].sum())
    return overlapped / total if total > 0 else 0.0


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
