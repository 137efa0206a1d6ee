"""Face-verification calibration: faces of known identities → same/different pairs → ROC, EER, a threshold at a
chosen false-accept rate, and a PNG plot (drawn with OpenCV; no plotting library needed).

Layout read by :func:`collect`: ``DIR/<identity>/*.jpg|png`` — one folder per person; in each image the best face
(highest quality, then largest) is that person. ``augment`` adds six perturbed copies of every image (mirror,
⅓ scale, blur σ 2, 60 % brightness, JPEG 30, 12° rotation): on a small set they are the only source of genuine pairs
for people photographed once, and they show how the similarity holds under camera-like damage. Perturbed copies of
one photo are *not* independent evidence: a threshold fitted on them is optimistic for new photos of the same people
and more so for new people (say so when you report it).

``tubeline models calibrate-face DIR`` wraps this; ``benchmarks/models/faces.py`` and ``tubeline models eval`` use it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class FaceSample:
    identity: str
    label: str  # file:variant
    embedding: np.ndarray
    quality: float


@dataclass(frozen=True)
class Calibration:
    """Verification figures of one embedder on one set of pairs (similarities are cosine)."""

    genuine: np.ndarray
    impostor: np.ndarray
    eer: float
    eer_threshold: float
    far_target: float
    threshold_at_far: float
    tar_at_far: float

    @property
    def margin(self) -> float:
        """Lowest genuine minus highest impostor similarity (> 0: a threshold separates them all)."""
        if not len(self.genuine) or not len(self.impostor):
            return float("nan")
        return float(self.genuine.min() - self.impostor.max())

    @property
    def separation(self) -> float:
        """d′ = (mean genuine − mean impostor) / √((var genuine + var impostor) / 2): scale-free, so embedders whose
        cosines live on different scales (dlib's all sit near 1) compare fairly."""
        spread = float(np.sqrt((self.genuine.var() + self.impostor.var()) / 2))
        return float((self.genuine.mean() - self.impostor.mean()) / max(spread, 1e-12))

    def errors(self, threshold: float) -> tuple[int, int]:
        """(false rejections, false acceptances) at ``threshold``."""
        return int(np.sum(self.genuine < threshold)), int(np.sum(self.impostor >= threshold))

    def summary(self, threshold: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "genuine pairs": len(self.genuine), "impostor pairs": len(self.impostor),
            "genuine min / median": f"{self.genuine.min():.4f} / {np.median(self.genuine):.4f}",
            "impostor max / median": f"{self.impostor.max():.4f} / {np.median(self.impostor):.4f}",
            "margin (genuine min - impostor max)": round(self.margin, 4),
            "separation d'": round(self.separation, 2),
            "EER": round(self.eer, 4), "threshold at EER": round(self.eer_threshold, 4),
            f"threshold at FAR {self.far_target:g}": round(self.threshold_at_far, 4),
            f"TAR at FAR {self.far_target:g}": round(self.tar_at_far, 4),
        }
        if threshold is not None:
            rejects, accepts = self.errors(threshold)
            out[f"errors at {threshold:.4f} (false rejects / accepts)"] = f"{rejects} / {accepts}"
        return out


def perturbations(image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    h, w = image.shape[:2]
    _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 30])
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0)
    jpeg30 = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    if jpeg30 is None:
        msg = "OpenCV could not decode the JPEG it had just encoded"
        raise ValueError(msg)
    return [
        ("mirror", np.ascontiguousarray(image[:, ::-1])),
        ("third", cv2.resize(image, (max(1, w // 3), max(1, h // 3)), interpolation=cv2.INTER_AREA)),
        ("blur", cv2.GaussianBlur(image, (0, 0), 2.0)),
        ("dark", cv2.convertScaleAbs(image, alpha=0.6, beta=0)),
        ("jpeg30", jpeg30),
        ("rot12", cv2.warpAffine(image, rotation, (w, h), borderMode=cv2.BORDER_REFLECT)),
    ]


def identity_images(folder: Path) -> dict[str, list[Path]]:
    """``identity → image files`` of a calibration folder (one sub-folder per identity)."""
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        images = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            out[sub.name] = images
    return out


def collect(analyzer: Any, layout: Mapping[str, Sequence[Path | np.ndarray]], augment: bool) -> list[FaceSample]:
    """The best face of every image (and of its perturbed copies) with its identity."""
    faces = []
    for identity, images in layout.items():
        for n, item in enumerate(images):
            image = cv2.imread(str(item)) if isinstance(item, Path) else item
            name = item.name if isinstance(item, Path) else f"{identity}#{n}"
            if image is None:
                logger.warning("cannot read %s; skipped", item)
                continue
            variants = [("orig", image)] + (perturbations(image) if augment else [])
            for variant, picture in variants:
                found = analyzer.best_embedding(picture)
                if found is None:
                    logger.info("no usable face in %s (%s)", name, variant)
                    continue
                vector, face = found
                faces.append(FaceSample(identity, f"{name}:{variant}", np.asarray(vector, np.float32),
                                        float(face.data["quality"][0])))
    return faces


def pair_similarities(faces: Sequence[FaceSample], min_quality: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarities, same-identity flags) over every pair of faces of at least ``min_quality``."""
    kept = [f for f in faces if f.quality >= min_quality]
    sims, same = [], []
    for a, b in itertools.combinations(kept, 2):
        sims.append(float(np.dot(a.embedding, b.embedding)))
        same.append(a.identity == b.identity)
    return np.asarray(sims, np.float64), np.asarray(same, dtype=bool)


def roc(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, FAR, TAR): accept a pair when its similarity ≥ threshold."""
    thresholds = np.unique(np.concatenate([genuine, impostor, [np.inf]]))[::-1]
    far = np.asarray([np.mean(impostor >= t) for t in thresholds])
    tar = np.asarray([np.mean(genuine >= t) for t in thresholds])
    return thresholds, far, tar


def calibrate(sims: np.ndarray, same: np.ndarray, far_target: float = 1e-3) -> Calibration:
    """EER, the threshold at ``far_target`` (the lowest threshold whose FAR does not exceed it) and its TAR."""
    genuine, impostor = np.sort(sims[same]), np.sort(sims[~same])
    if not len(genuine) or not len(impostor):
        msg = f"need genuine and impostor pairs, got {len(genuine)} and {len(impostor)} (more images per identity?)"
        raise ValueError(msg)
    thresholds, far, tar = roc(genuine, impostor)
    frr = 1 - tar
    best = int(np.argmin(np.abs(far - frr)))
    if genuine.min() > impostor.max():  # separable: EER 0 anywhere in the gap; report its middle
        eer, eer_threshold = 0.0, float((genuine.min() + impostor.max()) / 2)
    else:
        eer, eer_threshold = float((far[best] + frr[best]) / 2), float(thresholds[best])
    ok = np.flatnonzero(far <= far_target)
    at = int(ok[-1])  # thresholds descend: the last one within the target is the lowest
    threshold = float(thresholds[at]) if np.isfinite(thresholds[at]) else float(impostor.max() + 1e-6)
    if at + 1 < len(thresholds) and np.isfinite(thresholds[at]) and far[at + 1] > far_target:
        threshold = float((thresholds[at] + thresholds[at + 1]) / 2)  # the middle of the step, not its edge
    return Calibration(genuine, impostor, eer, eer_threshold, far_target, threshold,
                       float(np.mean(genuine >= threshold)))


def plot_roc(path: Path, curves: Mapping[str, Calibration], title: str = "face verification ROC") -> Path:
    """Write a PNG of TAR against FAR (log scale, 1e-4 … 1) for each calibration."""
    width, height, left, bottom, top, right = 760, 520, 80, 60, 50, 30
    img = np.full((height, width, 3), 255, np.uint8)
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    lo = -4.0

    def px(far: float, tar: float) -> tuple[int, int]:
        fx = (np.log10(max(far, 10**lo)) - lo) / -lo
        return int(x0 + fx * (x1 - x0)), int(y0 - tar * (y0 - y1))

    for k in range(int(lo), 1):
        x, _ = px(10.0**k, 0)
        cv2.line(img, (x, y0), (x, y1), (225, 225, 225), 1)
        cv2.putText(img, f"1e{k}", (x - 18, y0 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1)
    for k in range(0, 11, 2):
        _, y = px(1, k / 10)
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225), 1)
        cv2.putText(img, f"{k / 10:.1f}", (x0 - 40, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1)
    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    cv2.putText(img, title, (x0, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    cv2.putText(img, "false accept rate", (width // 2 - 60, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "TAR", (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    colours = [(200, 60, 30), (30, 30, 200), (40, 150, 40), (150, 40, 150)]
    for n, (name, cal) in enumerate(curves.items()):
        _, far, tar = roc(cal.genuine, cal.impostor)
        points = np.asarray([px(f, t) for f, t in zip(far, tar, strict=True)], np.int32)
        colour = colours[n % len(colours)]
        cv2.polylines(img, [points], False, colour, 2)
        label = f"{name}: EER {cal.eer:.3f}, margin {cal.margin:+.3f}"
        cv2.putText(img, label, (x0 + 250, y0 - 20 - 22 * n), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        msg = f"cannot write {path}"
        raise OSError(msg)
    return path


def plot_similarities(path: Path, curves: Mapping[str, Calibration], bins: int = 50) -> Path:
    """Write a PNG with one strip per embedder: genuine (green) and impostor (red) similarity histograms, the EER
    threshold (black line). Where the ROC is a step at 0 (separable pairs), this shows by how much."""
    strip, width, left, right = 150, 760, 60, 30
    img = np.full((strip * len(curves) + 40, width, 3), 255, np.uint8)
    for n, (name, cal) in enumerate(curves.items()):
        lo = float(min(cal.genuine.min(), cal.impostor.min()))
        hi = float(max(cal.genuine.max(), cal.impostor.max()))
        edges = np.linspace(lo, hi + 1e-9, bins + 1)
        top, base = 20 + strip * n + 25, 20 + strip * (n + 1) - 20
        scale = (width - left - right) / (hi - lo + 1e-9)
        for values, colour in ((cal.impostor, (60, 60, 220)), (cal.genuine, (40, 160, 40))):
            counts, _ = np.histogram(values, edges)
            share = counts / max(1, counts.max())
            for k in range(bins):
                x1 = int(left + (edges[k] - lo) * scale)
                x2 = int(left + (edges[k + 1] - lo) * scale)
                y = int(base - share[k] * (base - top))
                cv2.rectangle(img, (x1, y), (max(x1, x2 - 1), base), colour, 1)
        x = int(left + (cal.eer_threshold - lo) * scale)
        cv2.line(img, (x, top - 5), (x, base), (0, 0, 0), 2)
        cv2.line(img, (left, base), (width - right, base), (0, 0, 0), 1)
        cv2.putText(img, f"{name}: genuine (green) / impostor (red) cosine, {lo:.2f} .. {hi:.2f}; "
                    f"threshold {cal.eer_threshold:.3f}", (left, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        msg = f"cannot write {path}"
        raise OSError(msg)
    return path
