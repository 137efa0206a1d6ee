"""Enhancement of evidence frames (模糊图像处理): each operation makes a new image and a log entry; the original
is never changed.

Operations (``params`` bounded; unknown operations and parameters refused):

============== ==========================================================================================
sharpen        unsharp mask: ``amount`` (0–3), ``radius`` (Gaussian sigma, 0.5–10 px)
deblur         Richardson–Lucy deconvolution with a Gaussian PSF: ``sigma`` (0.5–5 px), ``iterations`` (1–50)
denoise        non-local means on one frame: ``strength`` (1–30)
denoise_multi  non-local means over neighbouring frames of the same sighting (the frames around its moment,
               ``frames`` 3–9, odd): noise that changes from frame to frame averages out, the scene does not
lowlight       gamma lift (``gamma`` 0.2–1) then CLAHE on lightness
contrast       CLAHE on lightness: ``clip`` (1–8), ``tiles`` (2–16)
dehaze         dark-channel prior (He et al.): ``omega`` (0.5–0.99), ``window`` (3–31 px)
upscale        bicubic ×``factor`` (2 or 4): the reference a learned upscaler must beat
superres       learned ×4 super-resolution (SPAN, :mod:`models.superres`; invents no detail a GAN would, but is
               still a model's estimate — marked as such)
============== ==========================================================================================

An optional ``region`` (x1, y1, x2, y2 in frame pixels) is cut out first (a plate, a face), which super-resolution
needs to stay within its input bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

Upscaler = Callable[[np.ndarray], np.ndarray]

LIMITS: dict[str, dict[str, tuple[float, float, float]]] = {
    # op: {param: (min, max, default)}
    "sharpen": {"amount": (0.0, 3.0, 1.0), "radius": (0.5, 10.0, 2.0)},
    "deblur": {"sigma": (0.5, 5.0, 1.5), "iterations": (1, 50, 10)},
    "denoise": {"strength": (1.0, 30.0, 7.0)},
    "denoise_multi": {"strength": (1.0, 30.0, 7.0), "frames": (3, 9, 5)},
    "lowlight": {"gamma": (0.2, 1.0, 0.5), "clip": (1.0, 8.0, 2.0)},
    "contrast": {"clip": (1.0, 8.0, 2.0), "tiles": (2, 16, 8)},
    "dehaze": {"omega": (0.5, 0.99, 0.9), "window": (3, 31, 15)},
    "upscale": {"factor": (2, 4, 4)},
    "superres": {},
}
OPERATIONS = tuple(LIMITS)


class EnhanceError(ValueError):
    """An operation or parameter is unknown or out of bounds."""


@dataclass(frozen=True)
class Step:
    op: str
    params: dict[str, float]


def check(op: str, params: Mapping[str, Any]) -> Step:
    """The operation with its parameters validated and defaults filled in."""
    if op not in LIMITS:
        msg = f"unknown operation {op!r}; one of {', '.join(OPERATIONS)}"
        raise EnhanceError(msg)
    unknown = set(params) - set(LIMITS[op])
    if unknown:
        msg = f"{op}: unknown parameter(s) {', '.join(sorted(unknown))}"
        raise EnhanceError(msg)
    out: dict[str, float] = {}
    for name, (lo, hi, default) in LIMITS[op].items():
        value = params.get(name, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= float(value) <= hi:
            msg = f"{op}.{name} must be a number in [{lo}, {hi}]"
            raise EnhanceError(msg)
        out[name] = float(value)
    if op == "denoise_multi" and int(out["frames"]) % 2 == 0:
        msg = "denoise_multi.frames must be odd"
        raise EnhanceError(msg)
    if op == "upscale" and out["factor"] not in (2.0, 4.0):
        msg = "upscale.factor is 2 or 4"
        raise EnhanceError(msg)
    return Step(op, out)


def _lightness(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    lab[..., 0] = fn(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def sharpen(image: np.ndarray, amount: float, radius: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), radius)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0)


def deblur(image: np.ndarray, sigma: float, iterations: float) -> np.ndarray:
    """Richardson–Lucy with a Gaussian point-spread function (symmetric, so it is its own mirror)."""
    observed = image.astype(np.float32) / 255.0 + 1e-4
    estimate = observed.copy()
    for _ in range(int(iterations)):
        blurred = cv2.GaussianBlur(estimate, (0, 0), sigma) + 1e-6
        estimate *= cv2.GaussianBlur(observed / blurred, (0, 0), sigma)
    return np.clip(estimate * 255.0, 0, 255).astype(np.uint8)


def lowlight(image: np.ndarray, gamma: float, clip: float) -> np.ndarray:
    table = np.array([(i / 255.0) ** gamma * 255 for i in range(256)], np.uint8)
    lifted = cv2.LUT(image, table)
    return contrast(lifted, clip, 8)


def contrast(image: np.ndarray, clip: float, tiles: float) -> np.ndarray:
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(int(tiles), int(tiles)))
    return _lightness(image, clahe.apply)


def dehaze(image: np.ndarray, omega: float, window: float) -> np.ndarray:
    """Dark-channel prior: estimate the haze's transmission and the atmospheric light, then invert the haze model."""
    src = image.astype(np.float32) / 255.0
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (int(window), int(window)))
    dark = cv2.erode(src.min(axis=2), kernel)
    flat = dark.reshape(-1)
    top = flat.argsort()[-max(1, flat.size // 1000):]
    light = src.reshape(-1, 3)[top].max(axis=0)
    norm = cv2.erode((src / np.maximum(light, 1e-3)).min(axis=2), kernel)
    transmission = cv2.GaussianBlur(1.0 - omega * norm, (0, 0), max(1.0, window / 3))
    transmission = np.maximum(transmission, 0.1)[..., None]
    out = (src - light) / transmission + light
    return np.clip(out * 255.0, 0, 255).astype(np.uint8)


def apply(image: np.ndarray, steps: Sequence[Step], *, neighbours: Sequence[np.ndarray] = (),
          upscaler: Upscaler | None = None, upscaler_id: str = "") -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Run ``steps`` in order on a copy of ``image``; (result, the operation log). ``neighbours``: the frames
    around ``image`` (same size, in time order, ``image`` in the middle) for ``denoise_multi``."""
    out = image.copy()
    log: list[dict[str, Any]] = []
    for step in steps:
        p = step.params
        entry: dict[str, Any] = {"op": step.op, "params": p, "input": f"{out.shape[1]}x{out.shape[0]}"}
        if step.op == "sharpen":
            out = sharpen(out, p["amount"], p["radius"])
        elif step.op == "deblur":
            out = deblur(out, p["sigma"], p["iterations"])
        elif step.op == "denoise":
            out = cv2.fastNlMeansDenoisingColored(out, None, p["strength"], p["strength"], 7, 21)
        elif step.op == "denoise_multi":
            out, used = _denoise_multi(out, neighbours, int(p["frames"]), p["strength"])
            entry["frames_used"] = used
        elif step.op == "lowlight":
            out = lowlight(out, p["gamma"], p["clip"])
        elif step.op == "contrast":
            out = contrast(out, p["clip"], p["tiles"])
        elif step.op == "dehaze":
            out = dehaze(out, p["omega"], p["window"])
        elif step.op == "upscale":
            f = int(p["factor"])
            out = cv2.resize(out, (out.shape[1] * f, out.shape[0] * f), interpolation=cv2.INTER_CUBIC)
        elif step.op == "superres":
            if upscaler is None:
                msg = "super-resolution is not available here (model span-x4 not installed)"
                raise EnhanceError(msg)
            out = upscaler(out)
            entry["model"] = upscaler_id
            entry["note"] = "a learned model's estimate of the detail, not recorded detail"
        entry["output"] = f"{out.shape[1]}x{out.shape[0]}"
        log.append(entry)
    return out, log


def _denoise_multi(image: np.ndarray, neighbours: Sequence[np.ndarray], frames: int,
                   strength: float) -> tuple[np.ndarray, int]:
    usable = [f for f in neighbours if f.shape == image.shape]
    if len(usable) < 3:
        return cv2.fastNlMeansDenoisingColored(image, None, strength, strength, 7, 21), 1
    centre = min(range(len(usable)), key=lambda i: float(np.abs(usable[i].astype(np.int16) - image).mean()))
    window = min(frames, len(usable) - (1 - len(usable) % 2))
    half = window // 2
    centre = min(max(centre, half), len(usable) - 1 - half)
    out = cv2.fastNlMeansDenoisingColoredMulti(list(usable), centre, window, None, strength, strength, 7, 21)
    return out, window


def crop(image: np.ndarray, region: Sequence[float] | None) -> np.ndarray:
    if not region:
        return image
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in region)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        msg = "the region is outside the frame or smaller than 4 px"
        raise EnhanceError(msg)
    return image[y1:y2, x1:x2].copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
