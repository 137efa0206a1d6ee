"""Object attributes computed from pixels: colour (via ``workers.detect.colours``), vehicle type, crop quality.

The colours are explainable rules over the object's own pixels (box interior without background-like and skin
pixels; persons split into upper and lower body) into the documented palette; their measured accuracy is in
``docs/detect.md``. Lighting, reflections and windows make them a filter for investigators, not evidence.
"""

from __future__ import annotations

import cv2
import numpy as np

from workers.detect.colours import PALETTE, in_front, person_colours, vehicle_colour

__all__ = ["PALETTE", "VEHICLE_CLASSES", "crop_box", "crop_quality", "crop_quality_ceiling", "dominant_colour",
           "in_front", "person_colours", "sharpness", "vehicle_colour", "vehicle_type"]

VEHICLE_TYPES = {"car": "car", "truck": "truck", "bus": "bus", "motorcycle": "motorcycle", "bicycle": "bicycle",
                 "van": "van"}
VEHICLE_CLASSES = frozenset(VEHICLE_TYPES)


def vehicle_type(class_name: str) -> str | None:
    """The vehicle type for a detector class (None for persons and other non-vehicles)."""
    return VEHICLE_TYPES.get(class_name)


def dominant_colour(crop: np.ndarray, *, is_vehicle: bool = True,
                    box: tuple[float, float, float, float] | None = None) -> tuple[str, float]:
    """(colour, confidence in [0, 1]) of an object: a vehicle's body, a person's top (``workers.detect.colours``);
    ``box`` is the object inside the crop (None: the crop is the box). ("unknown", 0.0) for tiny or empty crops."""
    if is_vehicle:
        return vehicle_colour(crop, box).as_tuple()
    return person_colours(crop, box)[0].as_tuple()


def sharpness(crop: np.ndarray, max_side: int | None = None) -> float:
    """Variance of the Laplacian of the grey crop, mapped to [0, 1) (≈0.5 at 150).

    With ``max_side`` a larger crop is first scaled down to that longest side (never up), so the measure is
    blur relative to the object rather than per pixel: at native resolution a larger view of the same
    object has smoother pixels and would score *lower*, though it shows more detail."""
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    if max_side is not None and max(grey.shape[:2]) > max_side:
        scale = max_side / max(grey.shape[:2])
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    var = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return var / (var + 150.0)


SIZE_FULL = 0.5  # share of the frame's area at which the size factor of crop quality reaches 1
SHARPNESS_SIDE = 128  # crops are judged for blur at this longest side (sharpness's max_side)


def crop_quality(box: np.ndarray, crop: np.ndarray, frame_w: int, frame_h: int) -> float:
    """How good a moment this is to keep a crop, in [0, 1]: size × sharpness × centrality × not cut.

    A product, so that within one track the ratio of two moments' qualities reads directly: a view 15 %
    larger (linear size: what a plate reader or face embedder gets in pixels) at the same sharpness is
    15 % better, which is what ``detect.crop_quality_gain`` compares. Factors:

    * size: ``sqrt(box area / (SIZE_FULL × frame area))``, capped at 1 — linear, and it keeps growing
      until the object covers half the frame (it used to saturate at 4 %, so every vehicle close enough
      to read a plate had the same size score and its first, smallest view was never bettered);
    * sharpness: ``0.5 + 0.5 × sharpness`` of the crop at ``SHARPNESS_SIDE`` px (motion blur, defocus);
    * centrality: ``0.9 + 0.1 × c``, ``c`` 1 at the frame centre, 0 in a corner (lens edges distort; a
      camera aimed at a spot sees it most head-on);
    * cut: × 0.6 when the box touches the frame edge (the plate or face may be outside).

    The box gives no view angle, so "frontal" is not measured here; the face worker's own gates judge it.
    """
    size, centred, whole = _placement(box, frame_w, frame_h)
    score = size * (0.5 + 0.5 * sharpness(crop, SHARPNESS_SIDE)) * centred * whole
    return float(min(1.0, max(0.0, score)))


def crop_quality_ceiling(box: np.ndarray, frame_w: int, frame_h: int) -> float:
    """The most :func:`crop_quality` can give this box, whatever its crop's sharpness, without reading a pixel.

    The same product with the sharpness factor (``0.5 + 0.5 × sharpness``, below 1) replaced by 1, in the same
    order: floating-point multiplication is monotonic, so ``crop_quality(box, crop, …) <= crop_quality_ceiling(box,
    …)`` holds exactly, and a moment whose ceiling cannot beat what a track already has needs no sharpness (the
    grey conversion and Laplacian of its crop, most of crop quality's cost)."""
    size, centred, whole = _placement(box, frame_w, frame_h)
    return float(min(1.0, max(0.0, size * 1.0 * centred * whole)))


def _placement(box: np.ndarray, frame_w: int, frame_h: int) -> tuple[float, float, float]:
    """Crop quality's factors from the box alone: size, centrality (0.9 + 0.1 × c) and cut (0.6 or 1)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(0.0, (x2 - x1) * (y2 - y1))
    size = min(1.0, (area / (SIZE_FULL * frame_w * frame_h)) ** 0.5)
    cx, cy = (x1 + x2) / 2 / frame_w - 0.5, (y1 + y2) / 2 / frame_h - 0.5
    centrality = 1.0 - min(1.0, (cx * cx + cy * cy) ** 0.5 / 0.7071)
    margin = 2.0
    cut = x1 <= margin or y1 <= margin or x2 >= frame_w - margin or y2 >= frame_h - margin
    return size, 0.9 + 0.1 * centrality, 0.6 if cut else 1.0


def crop_box(box: np.ndarray, frame_w: int, frame_h: int, margin: float) -> tuple[int, int, int, int]:
    """Integer crop rectangle around ``box`` with a relative margin, clipped to the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return (max(0, int(x1 - mx)), max(0, int(y1 - my)), min(frame_w, int(np.ceil(x2 + mx))),
            min(frame_h, int(np.ceil(y2 + my))))
