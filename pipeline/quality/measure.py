"""Per-frame picture measurements for video quality diagnosis: cheap, downscaled, numpy/OpenCV only.

:func:`measure` turns one BGR frame into a :class:`Measures`: brightness and contrast, a
no-reference blur estimate (Crété-Roffet's re-blur "blur effect", contrast-independent), a noise
estimate (Immerkær's Laplacian-difference operator on flat pixels), colour cast (Lab chroma offset
over chroma spread), how uniform the picture is (no signal), how strong an isolated spectral line is
(stripes / interference), and two small images for the stateful checks done by the diagnoser
(freeze, scene change, occlusion). Costs about 4 ms of CPU for a 768×576 frame (measured in
``benchmarks/quality``); nothing here depends on the frame's size beyond the first resize.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

WORK_WIDTH = 480
"""Width the sharpness, noise and stripe measurements run at."""
SMALL_SIZE = (160, 120)
"""Size of the image kept for freeze, scene change and occlusion."""
GRID = (8, 6)
"""Blocks (columns, rows) the small image is cut into for occlusion and scene change."""
FFT_SIZE = 256

_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_REBLUR = np.ones((1, 9), np.float32) / 9.0
_UNIFORM_TOLERANCE = 6.0


@dataclass(frozen=True)
class Measures:
    """What one frame looks like, in numbers the fault detectors compare with thresholds and the baseline."""

    mean: float
    """Mean luma, 0..1."""
    contrast: float
    """98th minus 2nd percentile of luma, 0..1."""
    blur: float
    """Crété-Roffet blur effect, 0 (sharp) .. 1 (flat)."""
    noise: float
    """Noise standard deviation in grey levels (0..255 scale) at the working width."""
    cast: float
    """Colour cast factor: Lab chroma offset ÷ (chroma spread + 1)."""
    chroma: float
    """Lab chroma offset of the mean colour from neutral (Lab units, 0..~128)."""
    uniform: float
    """Share of pixels within a few grey levels of the median colour, 0..1."""
    stripes: float
    """Strongest isolated spectral line above its spectral neighbourhood, in natural-log units."""
    small: np.ndarray
    """Grey image at :data:`SMALL_SIZE`, float32 0..255."""
    block_std: np.ndarray
    """Standard deviation of grey levels per block of the small image, shape (rows, cols)."""


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def _resize(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if w == width:
        return frame
    height = max(8, round(h * width / w))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def blur_effect(grey: np.ndarray) -> float:
    """Crété-Roffet et al. (2007): how little of the frame's variation a 9-tap re-blur removes."""
    g = grey.astype(np.float32)
    worst = 0.0
    for kernel, axis in ((_REBLUR, 1), (_REBLUR.T, 0)):
        blurred = cv2.filter2D(g, -1, kernel, borderType=cv2.BORDER_REFLECT)
        d_frame = np.abs(np.diff(g, axis=axis))
        d_blurred = np.abs(np.diff(blurred, axis=axis))
        total = float(d_frame.sum())
        if total < 1e-6:
            return 1.0
        kept = float(np.maximum(0.0, d_frame - d_blurred).sum())
        worst = max(worst, (total - kept) / total)
    return worst


def noise_sigma(grey: np.ndarray) -> float:
    """Immerkær (1996) noise estimate over the flattest 60 % of pixels (edges would count as noise)."""
    g = grey.astype(np.float32)
    response = np.abs(cv2.filter2D(g, -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)[1:-1, 1:-1]
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)[1:-1, 1:-1]
    magnitude = (np.abs(gx) + np.abs(gy)).ravel()
    k = int(0.6 * (magnitude.size - 1))
    flat = (magnitude <= np.partition(magnitude, k)[k]).reshape(response.shape)
    if not flat.any():
        return 0.0
    return float(np.sqrt(np.pi / 2.0) * response[flat].mean() / 6.0)


def colour_cast(frame: np.ndarray) -> tuple[float, float]:
    """Equivalent-circle cast factor in Lab (how far the mean chroma sits from neutral, per unit of spread)
    and that offset itself. A strong tint that clips channels widens the spread, so both are kept."""
    if frame.ndim == 2:
        return 0.0, 0.0
    lab = cv2.cvtColor(frame, cv2.COLOR_BGR2LAB).astype(np.float32)
    a = lab[..., 1] - 128.0
    b = lab[..., 2] - 128.0
    offset = float(np.hypot(a.mean(), b.mean()))
    spread = float(np.hypot(a.std(), b.std()))
    return offset / (spread + 1.0), offset


def uniformity(frame: np.ndarray) -> float:
    """Share of pixels whose every channel is within a few levels of the median colour."""
    pixels = frame.reshape(-1, frame.shape[2] if frame.ndim == 3 else 1).astype(np.int16)
    median = np.median(pixels, axis=0)
    close = np.all(np.abs(pixels - median) <= _UNIFORM_TOLERANCE, axis=1)
    return float(close.mean())


def stripe_strength(grey: np.ndarray) -> float:
    """The strongest isolated peak of the windowed spectrum over its 7×7 neighbourhood median (log units).

    A periodic pattern (interference bars, rolling stripes) is a spectral line: far above the bins
    around it. Natural edges and textures spread their energy along ridges, so their bins sit close to
    their neighbours'. Frequencies below 3 cycles per frame are ignored (the scene's layout lives there).
    """
    g = cv2.resize(grey, (FFT_SIZE, FFT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    g -= g.mean()
    window, band = _spectrum_masks()
    spectrum = cv2.magnitude(*cv2.split(cv2.dft(g * window, flags=cv2.DFT_COMPLEX_OUTPUT)))
    logmag = np.fft.fftshift(np.log1p(spectrum)).astype(np.float32)
    background = cv2.medianBlur(logmag, 5)
    return float((logmag - background)[band].max())


@functools.cache
def _spectrum_masks() -> tuple[np.ndarray, np.ndarray]:
    window = cv2.createHanningWindow((FFT_SIZE, FFT_SIZE), cv2.CV_32F)
    centre = FFT_SIZE // 2
    yy, xx = np.ogrid[:FFT_SIZE, :FFT_SIZE]
    radius = np.hypot(yy - centre, xx - centre)
    band = (radius >= 3) & (radius <= FFT_SIZE // 2 - 4)
    return window, band


def block_stds(small: np.ndarray) -> np.ndarray:
    cols, rows = GRID
    h, w = small.shape
    bh, bw = h // rows, w // cols
    blocks = small[: bh * rows, : bw * cols].reshape(rows, bh, cols, bw)
    return blocks.std(axis=(1, 3))


def measure(frame: np.ndarray) -> Measures:
    """Every per-frame measurement of a BGR (or grey) frame of any size."""
    work = _resize(frame, WORK_WIDTH)
    grey = _grey(work)
    lo, hi = np.percentile(grey, (2, 98))
    small_colour = cv2.resize(work, SMALL_SIZE, interpolation=cv2.INTER_AREA)
    small = _grey(small_colour).astype(np.float32)
    cast, chroma = colour_cast(small_colour)
    return Measures(
        mean=float(grey.mean()) / 255.0,
        contrast=float(hi - lo) / 255.0,
        blur=blur_effect(grey),
        noise=noise_sigma(grey),
        cast=cast,
        chroma=chroma,
        uniform=uniformity(small_colour),
        stripes=stripe_strength(grey),
        small=small,
        block_std=block_stds(small),
    )


def block_ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Zero-mean normalised cross-correlation per block of two small grey images, shape (rows, cols).

    Invariant to a change of gain and offset per block, so lighting changes do not count as change.
    Blocks flat in either image get 1.0 (nothing to compare)."""
    cols, rows = GRID
    h, w = a.shape
    bh, bw = h // rows, w // cols

    def blocks(img: np.ndarray) -> np.ndarray:
        x = img[: bh * rows, : bw * cols].reshape(rows, bh, cols, bw).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
        return x - x.mean(axis=2, keepdims=True)

    xa, xb = blocks(a), blocks(b)
    num = (xa * xb).sum(axis=2)
    den = np.sqrt((xa * xa).sum(axis=2) * (xb * xb).sum(axis=2))
    out = np.ones((rows, cols), np.float32)
    ok = den > (bh * bw) * 4.0  # both blocks need some texture (std > ~2 levels)
    out[ok] = num[ok] / den[ok]
    return out
