"""Clean backgrounds (temporal median per period) and object mattes (background subtraction, feathered alpha).

:func:`build_backgrounds` decodes the window once and takes, for each background period, the per-pixel
median of frames spread evenly over it; :class:`Backgrounds` cross-fades linearly between the period
centres. :func:`object_matte` separates an object from the background inside its (grown) box:
difference mask, opening, closing, components that lie mostly in the box, a border taper and a
Gaussian feather; when the mask is too thin it falls back to a feathered ellipse. :class:`CropCache`
keeps the mattes (BGR + alpha) in one temporary file so an hour of objects does not sit in memory.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.config.synopsis import BackgroundConfig, MatteConfig
from workers.synopsis.video import FootageReader

log = logging.getLogger(__name__)


class Backgrounds:
    """Period backgrounds at their centre times, cross-faded in between."""

    def __init__(self, centres: list[float], images: list[np.ndarray]) -> None:
        if not images:
            msg = "no background could be built: no frame was decoded in the window"
            raise LookupError(msg)
        self.centres = np.asarray(centres, dtype=np.float64)
        self.images = images

    def _weights(self, t: float) -> tuple[int, int, float]:
        if len(self.images) == 1 or t <= self.centres[0]:
            return 0, 0, 0.0
        if t >= self.centres[-1]:
            last = len(self.images) - 1
            return last, last, 0.0
        j = int(np.searchsorted(self.centres, t, "right"))
        i = j - 1
        w = (t - self.centres[i]) / (self.centres[j] - self.centres[i])
        return i, j, float(w)

    def at(self, t: float, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The background at source time ``t`` (POSIX s), whole or ``region = (x0, y0, x1, y1)``."""
        i, j, w = self._weights(t)
        a, b = self.images[i], self.images[j]
        if region is not None:
            x0, y0, x1, y1 = region
            a, b = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
        if w <= 0.0 or i == j:
            return a.copy()
        return cv2.addWeighted(a, 1.0 - w, b, w, 0.0)


def sample_times(start_s: float, end_s: float, settings: BackgroundConfig) -> list[tuple[float, list[float]]]:
    """(centre, sample times) of each background period of [start_s, end_s]."""
    span = max(end_s - start_s, 1e-6)
    periods = max(1, math.ceil(span / settings.period_s))
    length = span / periods
    plan = []
    for p in range(periods):
        lo = start_s + p * length
        times = [lo + (k + 0.5) * length / settings.samples for k in range(settings.samples)]
        plan.append((lo + length / 2, times))
    return plan


def build_backgrounds(reader: FootageReader, start_s: float, end_s: float, settings: BackgroundConfig,
                      progress: Callable[[float], None] | None = None) -> Backgrounds:
    """Pass 1: the temporal-median background of each period of the window (``progress`` gets 0..1)."""
    plan = sample_times(start_s, end_s, settings)
    pending = sorted((t, p) for p, (_, times) in enumerate(plan) for t in times)
    cursor = 0
    taken: list[list[np.ndarray]] = [[] for _ in plan]

    def wanted(t: float) -> bool:
        nonlocal cursor
        hit = False
        while cursor < len(pending) and pending[cursor][0] <= t + 1e-6:
            cursor += 1
            hit = True
        return hit

    for decoded in reader.frames(start_s, end_s, wanted):
        if decoded.image is not None:
            period = pending[cursor - 1][1]
            taken[period].append(decoded.image)
            if progress is not None:
                progress(cursor / max(1, len(pending)))
    centres, images = [], []
    for (centre, _), frames in zip(plan, taken, strict=True):
        if frames:
            centres.append(centre)
            images.append(np.median(np.stack(frames), axis=0).astype(np.uint8))
    log.debug("backgrounds: %d period(s), %s samples", len(images), [len(f) for f in taken])
    return Backgrounds(centres, images)


def grown_region(box: np.ndarray, margin: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box grown by ``margin`` of its size on each side, as integer ``(x0, y0, x1, y1)`` inside the frame."""
    width, height = size
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1) + 2.0, margin * (y2 - y1) + 2.0
    x0, y0 = max(0, int(math.floor(x1 - mx))), max(0, int(math.floor(y1 - my)))
    x3, y3 = min(width, int(math.ceil(x2 + mx))), min(height, int(math.ceil(y2 + my)))
    return x0, y0, max(x0 + 1, x3), max(y0 + 1, y3)


def _ellipse(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    bx0, by0, bx1, by1 = box
    centre = ((bx0 + bx1) // 2, (by0 + by1) // 2)
    axes = (max(1, (bx1 - bx0) // 2), max(1, (by1 - by0) // 2))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    return mask


def object_matte(crop: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int],
                 settings: MatteConfig) -> np.ndarray:
    """8-bit alpha of the object in ``crop`` (the grown box); ``box`` is the object's box in crop pixels."""
    h, w = crop.shape[:2]
    diff = cv2.absdiff(crop, background).max(axis=2)
    mask: np.ndarray = np.where(diff > settings.threshold, 255, 0).astype(np.uint8)
    if settings.open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.open_px,) * 2))
    if settings.close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE,
                                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.close_px,) * 2))
    bx0, by0, bx1, by1 = box
    inside = np.zeros((h, w), bool)
    inside[by0:by1, bx0:bx1] = True
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count > 1:
        in_box = np.bincount(labels[inside], minlength=count)
        keep = in_box >= 0.5 * stats[:, cv2.CC_STAT_AREA]
        keep[0] = False
        mask = np.where(keep[labels], 255, 0).astype(np.uint8)
    box_area = max(1, (bx1 - bx0) * (by1 - by0))
    if np.count_nonzero(mask[by0:by1, bx0:bx1]) < settings.min_fill * box_area:
        mask = _ellipse((h, w), box)
    border = max(1, int(math.ceil(2 * settings.feather_px)))
    mask[:border, :] = 0
    mask[-border:, :] = 0
    mask[:, :border] = 0
    mask[:, -border:] = 0
    if settings.feather_px > 0:
        k = 2 * int(math.ceil(2 * settings.feather_px)) + 1
        mask = cv2.GaussianBlur(mask, (k, k), settings.feather_px)
    return mask


@dataclass(frozen=True)
class _Entry:
    offset: int
    x: int
    y: int
    h: int
    w: int


class CropCache:
    """Mattes (BGR + alpha, ``h × w × 4`` bytes) appended to one file, read back by key."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "crops.bin"
        self._fh = self.path.open("w+b")
        self._index: dict[tuple[int, int], _Entry] = {}
        self._size = 0

    def put(self, key: tuple[int, int], x: int, y: int, bgr: np.ndarray, alpha: np.ndarray) -> None:
        data = np.dstack([bgr, alpha]).tobytes()
        self._fh.write(data)
        self._index[key] = _Entry(self._size, x, y, bgr.shape[0], bgr.shape[1])
        self._size += len(data)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def bytes(self) -> int:
        return self._size

    def finish_writing(self) -> None:
        self._fh.flush()

    def get(self, key: tuple[int, int]) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        entry = self._index.get(key)
        if entry is None:
            return None
        raw = os.pread(self._fh.fileno(), entry.h * entry.w * 4, entry.offset)
        pixels = np.frombuffer(raw, np.uint8).reshape(entry.h, entry.w, 4)
        return entry.x, entry.y, pixels[:, :, :3], pixels[:, :, 3]

    def close(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
