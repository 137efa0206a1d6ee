"""Colours that describe the object, not its background: vehicle body colour, person upper- and lower-body colours.

The palette (``PALETTE``, the wire schema's ``schemas.tracks.Colour`` without ``unknown``) and what each name means
in HSV (OpenCV ranges: H 0–179, S and V 0–255) are documented in ``docs/detect.md`` ("Colours"). In short: a pixel
is *chromatic* when S ≥ 60 and V ≥ 50 and then named by hue (red, brown, yellow, green, blue; magenta/purple fold
onto red); otherwise it is achromatic and the region's brightness decides white, silver, grey or black.

Which pixels count (:func:`object_pixels`):

1. **Where.** The crop the detect worker keeps has a margin around the box (``detect.crop_margin``). Inside the box:
   a vehicle's rows 45–85 % and the middle 60 % of its width (the body panels below the windows, above the road
   under it — the region of the earlier rule, now of the box rather than of the crop with its margin);
   a person's *upper* body is rows 18–50 % of the box (shoulders to
   waist: the head and the hair are above), the *lower* body rows 55–92 %, both in the middle 50 % of the width
   (arms, and background between the legs, sit at the sides).
2. **Not the background.** The margin ring outside the box is a sample of the background (lawn, wall, road). Pixels
   are counted into a coarse colour histogram (12 hues × 2 saturations for chromatic pixels, 6 brightness levels
   for the rest); a pixel inside the box whose bin is *more frequent in the ring than inside the box* is
   background-like and dropped (histogram back-projection). A close-up fills the frame and has no ring: then
   nothing is dropped. A bin that covers more than 60 % of the inside is never dropped (a grey car on grey road
   is still grey).
3. **Not skin** (persons): pixels in the YCrCb skin range (Cr 135–173, Cb 77–127) are dropped (hands, face).
4. **Not another object in front**: pixels inside the box of another detected object that overlaps this one and
   whose bottom edge is lower in the picture (nearer the camera) are dropped (:func:`in_front`), unless that leaves
   fewer than 24 pixels.

The survivors are named (:func:`classify_pixels`). A survivor darker than V 50 shows no hue (tyres, the shadow under
a body, dark glass, the dark clothes of someone passing in front): it is evidence neither for a colour nor against
one. So the region is coloured when at least 30 % of the survivors (and 24 pixels) are bright enough to show a hue
(V ≥ 50; fewer: the object is dark) and at least 30 % of *those* are chromatic — the same 30 % both times, no new threshold; the
rule before the third pass (2026-12-02) took the chromatic share of all survivors, so a light-blue car half hidden by a dark coat
read grey and dark-blue jeans in shade read grey. A coloured region is named by the hue with the most votes, each
chromatic pixel voting with its saturation (a weakly coloured pixel's hue is mostly noise and tint of the light: the
near-grey reflections and lettering on a body must not outvote its strongly coloured paint); otherwise white,
silver, grey or black from the 80th percentile of the brightness of the achromatic survivors (dark ones included).
Confidence = the share of the survivors whose own name is the answer. Fewer than 24 survivors: ``unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

PALETTE = ("white", "black", "grey", "silver", "red", "blue", "green", "yellow", "brown")

_HUE_BINS = (  # (upper bound of OpenCV hue 0-179, colour); red wraps around 180
    (10, "red"),
    (22, "brown"),
    (35, "yellow"),
    (85, "green"),
    (130, "blue"),
    (160, "red"),  # magenta/purple are not in the palette; nearest is red
    (180, "red"),
)
CHROMA_S, CHROMA_V = 60, 50  # a pixel is chromatic at S >= 60 and V >= 50
CHROMA_SHARE = 0.3  # share of chromatic pixels among the lit survivors that makes the region coloured
LIT_SHARE = CHROMA_SHARE  # share of survivors that must be lit (V >= CHROMA_V) for the region to be coloured
MIN_PIXELS = 24
WORK_SIDE = 64  # regions are scaled down to this longest side: colour needs no detail
DOMINANT_BIN = 0.6  # a bin holding more of the inside than this is the object, whatever the ring says

# (row from, row to, column from, column to) as fractions of the box
VEHICLE_REGION = (0.45, 0.85, 0.20, 0.80)
UPPER_REGION = (0.18, 0.50, 0.25, 0.75)
LOWER_REGION = (0.55, 0.92, 0.25, 0.75)


@dataclass(frozen=True)
class ColourResult:
    colour: str
    confidence: float

    def as_tuple(self) -> tuple[str, float]:
        return self.colour, self.confidence


UNKNOWN = ColourResult("unknown", 0.0)


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
    """White/silver/grey/black from the bright end of the value distribution (80th percentile).

    A white body in shade has dark pixels but its brightest panels are still near white, whereas a grey body
    never gets there."""
    level = float(np.percentile(v, 80))
    if level >= 200:
        return "white"
    if level >= 150:
        return "silver"
    if level >= 75:
        return "grey"
    return "black"


Weighting = Literal["saturation", "count", "chroma"]
WEIGHTINGS: tuple[Weighting, ...] = ("saturation", "count", "chroma")


def classify_pixels(hsv: np.ndarray, weighting: Weighting = "saturation",
                    lit_share: float | None = LIT_SHARE) -> ColourResult:
    """Name an N×3 uint8 HSV array of object pixels (see the module docstring).

    ``weighting`` is what a chromatic pixel's hue vote weighs: its saturation (the default), 1 (``count``, the rule
    before 2026-12-02) or its chroma S×V/255 (``chroma``). ``lit_share``: the region is coloured when at least this
    share of the pixels, and ``MIN_PIXELS``, is lit (V ≥ ``CHROMA_V``) and ``CHROMA_SHARE`` of the lit ones are chromatic; None is the rule
    before the third pass (``CHROMA_SHARE`` of all pixels chromatic). The alternatives stay for the measured comparison
    (``benchmarks/models/colour_cv.py``, docs/detect.md)."""
    if len(hsv) < MIN_PIXELS:
        return UNKNOWN
    h, s, v = (hsv[:, i].astype(np.int32) for i in range(3))
    chromatic = (s >= CHROMA_S) & (v >= CHROMA_V)
    if lit_share is None:
        coloured = chromatic.mean() >= CHROMA_SHARE
    else:
        lit = int(np.count_nonzero(v >= CHROMA_V))
        coloured = (lit >= max(MIN_PIXELS, lit_share * len(hsv))
                    and np.count_nonzero(chromatic) >= CHROMA_SHARE * lit)
    if coloured:
        names = hue_colour(h[chromatic], v[chromatic])
        weights = {"saturation": s[chromatic] / 255.0, "count": None,
                   "chroma": s[chromatic] * v[chromatic] / 65025.0}[weighting]
        best = int(np.bincount(names, weights=weights, minlength=len(PALETTE)).argmax())
        return ColourResult(PALETTE[best], float(np.count_nonzero(names == best) / len(hsv)))
    return ColourResult(achromatic_colour(v[~chromatic]), float((~chromatic).mean()))


def colour_bins(hsv: np.ndarray) -> np.ndarray:
    """Coarse colour bin per pixel: 12 hues × 2 saturations when chromatic, else one of 6 brightness levels."""
    h, s, v = (hsv[:, i].astype(np.int32) for i in range(3))
    chromatic = (s >= CHROMA_S) & (v >= CHROMA_V)
    hue_bin = (h * 12) // 180
    chroma_bin = 6 + hue_bin * 2 + (s >= 150)
    return np.where(chromatic, chroma_bin, np.minimum(v * 6 // 256, 5)).astype(np.int32)


N_BINS = 6 + 24


def _shrink(image: np.ndarray) -> np.ndarray:
    side = max(image.shape[:2])
    if side <= WORK_SIDE:
        return image
    scale = WORK_SIDE / side
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _skin(bgr: np.ndarray) -> np.ndarray:
    ycrcb = cv2.cvtColor(bgr.reshape(-1, 1, 3), cv2.COLOR_BGR2YCrCb).reshape(-1, 3).astype(np.int16)
    cr, cb = ycrcb[:, 1], ycrcb[:, 2]
    return (cr >= 135) & (cr <= 173) & (cb >= 77) & (cb <= 127)


def _ring(crop: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """BGR pixels of the crop outside the box (N×3), scaled down like the regions."""
    x1, y1, x2, y2 = box
    small = _shrink(crop)
    fy, fx = small.shape[0] / crop.shape[0], small.shape[1] / crop.shape[1]
    mask = np.ones(small.shape[:2], dtype=bool)
    mask[int(y1 * fy) : int(np.ceil(y2 * fy)), int(x1 * fx) : int(np.ceil(x2 * fx))] = False
    return small[mask]


Box = tuple[float, float, float, float]


def in_front(box: Box, others: Sequence[Box]) -> list[Box]:
    """The boxes of ``others`` that overlap ``box`` and stand in front of it: their bottom edge is lower in the
    picture (nearer the camera on a ground plane seen from above, as surveillance cameras see it)."""
    x1, y1, x2, y2 = box
    return [o for o in others if o[0] < x2 and o[2] > x1 and o[1] < y2 and o[3] > y1 and o[3] > y2]


def _not_occluded(shape: tuple[int, int], origin: tuple[float, float], size: tuple[float, float],
                  occluders: Sequence[Box]) -> np.ndarray:
    """Flat mask of a (shrunk) region's pixels that lie outside every occluder box (crop coordinates)."""
    rows, cols = shape
    ox, oy = origin
    sx, sy = size[0] / max(cols, 1), size[1] / max(rows, 1)
    xs = ox + (np.arange(cols) + 0.5) * sx
    ys = oy + (np.arange(rows) + 0.5) * sy
    free = np.ones((rows, cols), dtype=bool)
    for a, b, c, d in occluders:
        free &= ~(((ys >= b) & (ys < d))[:, None] & ((xs >= a) & (xs < c))[None, :])
    return free.ravel()


def object_pixels(crop: np.ndarray, box: tuple[int, int, int, int], region: tuple[float, float, float, float],
                  *, skin: bool = False, background: bool = True, occluders: Sequence[Box] = ()) -> np.ndarray:
    """HSV pixels (N×3) of ``region`` of the box that look like the object (see the module docstring);
    ``occluders`` are boxes (crop pixels) of objects in front of it, whose pixels are not the object's."""
    return _object_pixels(crop, box, region, skin, occluders, _ring_histogram(crop, box) if background else None)


def _ring_histogram(crop: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """Share of the background ring's pixels per colour bin; None when the ring has too few pixels to judge.
    One per crop and box: a person's two regions share it."""
    ring = _ring(crop, box)
    if len(ring) < MIN_PIXELS:
        return None
    ring_hsv = cv2.cvtColor(ring.reshape(-1, 1, 3), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    return np.bincount(colour_bins(ring_hsv), minlength=N_BINS) / len(ring_hsv)


def _object_pixels(crop: np.ndarray, box: tuple[int, int, int, int], region: tuple[float, float, float, float],
                   skin: bool, occluders: Sequence[Box], outside: np.ndarray | None) -> np.ndarray:
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    r0, r1, c0, c1 = region
    top, left = int(y1 + r0 * bh), int(x1 + c0 * bw)
    part = crop[top : int(y1 + r1 * bh), left : int(x1 + c1 * bw)]
    if part.size == 0:
        return np.zeros((0, 3), np.uint8)
    small = _shrink(part)
    bgr = small.reshape(-1, 3)
    keep = np.ones(len(bgr), dtype=bool)
    if occluders:
        free = _not_occluded(small.shape[:2], (left, top), (part.shape[1], part.shape[0]), occluders)
        if free.sum() >= MIN_PIXELS:  # mostly hidden: better the occluder's colour with low confidence than none
            keep &= free
    if skin:
        keep &= ~_skin(bgr)
    hsv = cv2.cvtColor(bgr.reshape(-1, 1, 3), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    if outside is not None and keep.any():
        bins = colour_bins(hsv)
        inside = np.bincount(bins[keep], minlength=N_BINS) / max(1, int(keep.sum()))
        background_like = (outside > inside) & (inside < DOMINANT_BIN)
        keep &= ~background_like[bins]
    return hsv[keep]


def box_in_crop(crop: np.ndarray, box: tuple[float, float, float, float] | None) -> tuple[int, int, int, int]:
    """The box in crop pixels, clipped; the whole crop when ``box`` is None."""
    height, width = crop.shape[:2]
    if box is None:
        return 0, 0, width, height
    x1, y1, x2, y2 = box
    return (max(0, int(round(x1))), max(0, int(round(y1))), min(width, int(round(x2))), min(height, int(round(y2))))


def vehicle_colour(crop: np.ndarray, box: Box | None = None, region: tuple[float, float, float, float] = VEHICLE_REGION,
                   occluders: Sequence[Box] = (), weighting: Weighting = "saturation",
                   lit_share: float | None = LIT_SHARE) -> ColourResult:
    """Body colour of a vehicle; ``box`` is the vehicle in crop pixels (None: the crop is the box), ``occluders``
    the boxes of objects in front of it (crop pixels; see :func:`in_front`), ``weighting`` and ``lit_share`` as for
    :func:`classify_pixels`."""
    if crop.size == 0:
        return UNKNOWN
    pixels = object_pixels(crop, box_in_crop(crop, box), region, occluders=occluders)
    return classify_pixels(pixels, weighting, lit_share)


def person_colours(crop: np.ndarray, box: Box | None = None, occluders: Sequence[Box] = (),
                   weighting: Weighting = "saturation",
                   lit_share: float | None = LIT_SHARE) -> tuple[ColourResult, ColourResult]:
    """(upper-body, lower-body) clothing colours of a person; ``box``, ``occluders``, ``weighting`` and
    ``lit_share`` as for :func:`vehicle_colour`."""
    if crop.size == 0:
        return UNKNOWN, UNKNOWN
    inner = box_in_crop(crop, box)
    outside = _ring_histogram(crop, inner)  # the background ring is one for both regions
    upper, lower = (classify_pixels(_object_pixels(crop, inner, region, True, occluders, outside), weighting,
                                    lit_share) for region in (UPPER_REGION, LOWER_REGION))
    return upper, lower
