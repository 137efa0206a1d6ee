"""Object crops as the enrichment workers receive them: parse, skip stale ones, fetch and decode, locate.

Shared by the plate and face workers (both consume ``tubeline.objects.v1``). Failures that can never
succeed on a retry — an invalid message, a crop object that is missing, bytes that are not an image — raise
:class:`pipeline.bus.base.BadMessage` so the message goes to the dead-letter topic with the reason;
a store that is unreachable raises its own error and fails the worker (the batch is redelivered).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from pipeline.bus.base import BadMessage, Message
from pipeline.store.base import ObjectNotFound, ObjectStore
from schemas.objects import ObjectCrop

log = logging.getLogger(__name__)


def parse_object(message: Message) -> ObjectCrop:
    """The ObjectCrop in ``message``; BadMessage if it is not one."""
    try:
        return ObjectCrop.from_json(message.value)
    except ValueError as exc:
        msg = f"invalid object message: {exc}"
        raise BadMessage(msg) from None


def lag_seconds(crop: ObjectCrop, now: datetime) -> float:
    """How long ago (wall clock) the crop's frame was captured."""
    return (now - crop.captured_at).total_seconds()


def is_stale(crop: ObjectCrop, now: datetime, max_lag_s: float) -> bool:
    """True when the skip policy applies: ``max_lag_s`` > 0 and the crop is older than that."""
    return max_lag_s > 0 and lag_seconds(crop, now) > max_lag_s


def count_stale(stats: Counter[str], worker: str, crop: ObjectCrop, now: datetime, max_lag_s: float) -> None:
    """Count a crop skipped for being older than ``max_lag_s``; warn on the first and every 1000th."""
    stats["skipped_stale"] += 1
    count = stats["skipped_stale"]
    if count == 1 or count % 1000 == 0:
        log.warning("%s: skipping objects captured more than %.0f s ago (%d so far; latest %.0f s old)",
                    worker, max_lag_s, count, lag_seconds(crop, now))


def load_image(store: ObjectStore, crop: ObjectCrop) -> np.ndarray:
    """The crop as a BGR image; BadMessage when the object is missing or not a decodable image."""
    try:
        data = store.get(crop.crop_key)
    except ObjectNotFound:
        msg = f"crop object {crop.crop_key} not found in the store"
        raise BadMessage(msg) from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None or image.size == 0:
        msg = f"crop object {crop.crop_key} ({len(data)} bytes) is not a decodable image"
        raise BadMessage(msg)
    return image


@dataclass(frozen=True)
class CropPlacement:
    """Where the crop's pixels sit in the source frame (crops are cut, never scaled)."""

    x: int
    y: int

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates (…×2, or boxes …×4) to source-frame pixels."""
        pts = np.asarray(points, dtype=np.float64)
        shift = np.array([self.x, self.y] * (pts.shape[-1] // 2), dtype=np.float64)
        return pts + shift


def placement(crop: ObjectCrop, image: np.ndarray, margin: float) -> CropPlacement:
    """The crop's top-left corner in the frame: the detect worker's rule (box grown by ``margin`` of its size,
    clipped to the frame) when that reproduces the crop's size, else the crop centred on the box."""
    x1, y1, x2, y2 = crop.box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right = min(crop.frame_width, int(math.ceil(x2 + mx)))
    bottom = min(crop.frame_height, int(math.ceil(y2 + my)))
    height, width = image.shape[:2]
    if (right - left, bottom - top) == (width, height):
        return CropPlacement(left, top)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(min(max(0.0, cx - width / 2), max(0, crop.frame_width - width)))
    top = int(min(max(0.0, cy - height / 2), max(0, crop.frame_height - height)))
    return CropPlacement(left, top)


def clip_box(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """A box clipped to a ``width`` x ``height`` frame, rounded to 0.01 px, as a wire tuple."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((min(max(0.0, x1), width), min(max(0.0, x2), width)))
    y1, y2 = sorted((min(max(0.0, y1), height), min(max(0.0, y2), height)))
    return (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        msg = "JPEG encoding failed"
        raise RuntimeError(msg)
    return data.tobytes()
