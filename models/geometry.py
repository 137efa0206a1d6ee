"""Box and point geometry shared by the model backends: NMS, resizing with its inverse, corner ordering,
perspective rectification and the least-squares similarity transform used for face alignment."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, classes: np.ndarray | None = None) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first.

    With ``classes`` the suppression is per class (boxes of different classes never suppress each other).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    if classes is not None:
        # Offset each class into its own coordinate region so one pass handles all classes.
        span = float(boxes.max() - boxes.min()) + 1.0
        boxes = boxes + (np.asarray(classes, dtype=np.float32).reshape(-1, 1) * span)
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class Resize:
    """How an image was mapped into a model input: ``model = original * scale + pad``."""

    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map x,y pairs (last axis pairs, any leading shape) from model input back to the original image."""
        pts = np.asarray(points, dtype=np.float32)
        flat = pts.reshape(-1, 2)
        out = np.empty_like(flat)
        out[:, 0] = (flat[:, 0] - self.pad_x) / self.scale_x
        out[:, 1] = (flat[:, 1] - self.pad_y) / self.scale_y
        return out.reshape(pts.shape)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        return self.to_original(np.asarray(boxes, dtype=np.float32).reshape(-1, 2, 2)).reshape(-1, 4)


def stretch(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Resize]:
    h, w = image.shape[:2]
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return resized, Resize(width / w, height / h)


def letterbox(image: np.ndarray, width: int, height: int, fill: int = 114) -> tuple[np.ndarray, Resize]:
    """Resize keeping the aspect ratio and pad (centred) to ``width``×``height``, as ultralytics does."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image
    pad_x, pad_y = (width - nw) / 2, (height - nh) / 2
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    out = cv2.copyMakeBorder(
        resized,
        top,
        height - nh - top,
        left,
        width - nw - left,
        cv2.BORDER_CONSTANT,
        value=(fill, fill, fill),
    )
    return out, Resize(scale, scale, float(left), float(top))


def fit_multiple(image: np.ndarray, max_side: int, multiple: int = 32) -> tuple[np.ndarray, Resize]:
    """Downscale so the long side is at most ``max_side``, then pad right/bottom to a multiple of ``multiple``."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    pw, ph = -nw % multiple, -nh % multiple
    if pw or ph:
        resized = cv2.copyMakeBorder(resized, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return resized, Resize(nw / w, nh / h)


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points ordered top-left, top-right, bottom-right, bottom-left (image coordinates, y down)."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen, starting near the left (angle -pi)
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -start, axis=0)


def expand_quad(quad: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Grow an ordered quadrilateral about its centre along its own width (sx) and height (sy) axes."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    centre = q.mean(axis=0)
    across = ((q[1] - q[0]) + (q[2] - q[3])) / 2
    down = ((q[3] - q[0]) + (q[2] - q[1])) / 2
    out = q.copy()
    for i, (a, d) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
        out[i] = centre + a * across * sx / 2 + d * down * sy / 2
    return out


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    width = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    height = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    return float(width), float(height)


def rectify(image: np.ndarray, quad: np.ndarray, width: int, height: int) -> np.ndarray:
    """Warp the ordered quadrilateral ``quad`` onto an upright ``width``×``height`` image."""
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(np.asarray(quad, dtype=np.float32).reshape(4, 2), dst)
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 matrix of the least-squares similarity (rotation, uniform scale, translation) mapping src→dst.

    Umeyama's method without reflection, as used for 5-point face alignment.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1
    rot = u @ fix @ vt
    var_s = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ fix) / var_s) if var_s > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]
