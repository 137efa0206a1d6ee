"""Object attributes computed from pixels: dominant colour, vehicle type, crop quality.

The colour classifier is deliberately simple and explainable: over the crop's central region in
HSV space it first decides whether the body is coloured or achromatic, then takes the majority hue
bin or the brightness level, into the search palette (white, black, grey, silver, red, blue, green,
yellow, brown). Its measured accuracy is in ``docs/detect.md``;
lighting, reflections and windows make it a coarse filter for investigators, not evidence.
"""

from __future__ import annotations

import cv2
import numpy as np

PALETTE = ("white", "black", "grey", "silver", "red", "blue", "green", "yellow", "brown")

VEHICLE_TYPES = {"car": "car", "truck": "truck", "bus": "bus", "motorcycle": "motorcycle", "bicycle": "bicycle",
                 "van": "van"}
VEHICLE_CLASSES = frozenset(VEHICLE_TYPES)


def vehicle_type(class_name: str) -> str | None:
    """The vehicle type for a detector class (None for persons and other non-vehicles)."""
    return VEHICLE_TYPES.get(class_name)


def central_region(crop: np.ndarray, is_vehicle: bool) -> np.ndarray:
    """The part of a crop most likely to show the object's body colour (not road, sky or windows)."""
    h, w = crop.shape[:2]
    if is_vehicle:  # lower-middle body panels; windows sit in the top third
        return crop[int(h * 0.45) : int(h * 0.85), int(w * 0.2) : int(w * 0.8)]
    return crop[int(h * 0.2) : int(h * 0.6), int(w * 0.25) : int(w * 0.75)]  # a person's torso


_HUE_BINS = (  # (upper bound of OpenCV hue 0-179, colour); red wraps around 180
    (10, "red"),
    (22, "brown"),
    (35, "yellow"),
    (85, "green"),
    (130, "blue"),
    (160, "red"),  # magenta/purple are not in the palette; nearest is red
    (180, "red"),
)


def hue_colour(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Palette index per chromatic pixel from hue (dark oranges are brown, bright ones yellow)."""
    out = np.full(len(h), PALETTE.index("red"), dtype=np.int8)
    lower = 0
    for upper, name in _HUE_BINS:
        out[(h >= lower) & (h < upper)] = PALETTE.index(name)
        lower = upper
    out[(h >= 10) & (h < 22) & (v > 190)] = PALETTE.index("yellow")
    return out


def achromatic_colour(v: np.ndarray) -> str:
    """White/silver/grey/black from the bright end of the value distribution.

    Uses the 80th percentile rather than per-pixel votes: a white body in shade has dark pixels but
    its brightest panels are still near white, whereas a grey body never gets there.
    """
    level = float(np.percentile(v, 80))
    if level >= 200:
        return "white"
    if level >= 150:
        return "silver"
    if level >= 75:
        return "grey"
    return "black"


def classify_region(hsv: np.ndarray, chroma_share: float = 0.3) -> tuple[str, float]:
    """(colour, confidence) for an N×3 uint8 HSV array (OpenCV ranges: H 0–179, S and V 0–255).

    Two stages: if at least ``chroma_share`` of the pixels are clearly coloured (S ≥ 60, V ≥ 50), the
    colour is the majority hue bin among them; otherwise the body is achromatic and its brightness
    decides between white, silver, grey and black. Confidence is the share of pixels that support it.
    """
    h, s, v = (hsv[:, i].astype(np.int16) for i in range(3))
    chromatic = (s >= 60) & (v >= 50)
    if chromatic.mean() >= chroma_share:
        votes = np.bincount(hue_colour(h[chromatic], v[chromatic]), minlength=len(PALETTE))
        best = int(votes.argmax())
        return PALETTE[best], float(votes[best] / len(hsv))
    return achromatic_colour(v[~chromatic]), float((~chromatic).mean())


def dominant_colour(crop: np.ndarray, *, is_vehicle: bool = True, min_pixels: int = 64) -> tuple[str, float]:
    """(colour, confidence in [0, 1]); ("unknown", 0.0) for tiny or empty crops."""
    if crop.size == 0:
        return "unknown", 0.0
    region = central_region(crop, is_vehicle)
    if region.shape[0] * region.shape[1] < min_pixels:
        return "unknown", 0.0
    if max(region.shape[:2]) > 96:  # colour does not need detail; keep it cheap
        scale = 96 / max(region.shape[:2])
        region = cv2.resize(region, (max(1, int(region.shape[1] * scale)), max(1, int(region.shape[0] * scale))),
                            interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    return classify_region(hsv)


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
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(0.0, (x2 - x1) * (y2 - y1))
    size = min(1.0, (area / (SIZE_FULL * frame_w * frame_h)) ** 0.5)
    cx, cy = (x1 + x2) / 2 / frame_w - 0.5, (y1 + y2) / 2 / frame_h - 0.5
    centrality = 1.0 - min(1.0, (cx * cx + cy * cy) ** 0.5 / 0.7071)
    margin = 2.0
    cut = x1 <= margin or y1 <= margin or x2 >= frame_w - margin or y2 >= frame_h - margin
    score = size * (0.5 + 0.5 * sharpness(crop, SHARPNESS_SIDE)) * (0.9 + 0.1 * centrality) * (0.6 if cut else 1.0)
    return float(min(1.0, max(0.0, score)))


def crop_box(box: np.ndarray, frame_w: int, frame_h: int, margin: float) -> tuple[int, int, int, int]:
    """Integer crop rectangle around ``box`` with a relative margin, clipped to the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return (max(0, int(x1 - mx)), max(0, int(y1 - my)), min(frame_w, int(np.ceil(x2 + mx))),
            min(frame_h, int(np.ceil(y2 + my))))
