"""One vehicle crop → at most one plate read: run the plate pipeline, keep the best plate, classify its colour.

The pipeline runs in ``scene`` mode on the whole vehicle crop (plate detector, rectification, grammar-
constrained reading; reads that fit no configured plate grammar are dropped by the pipeline). When it
finds several plates in one crop (a vehicle behind, a plate-like sign) the most confident read wins.

The plate's *kind* is its background colour (``schemas.plates.PlateKind``), from the pixels inside the
plate quadrilateral in HSV. When at least a quarter of them are saturated (S ≥ 60, V ≥ 60) the plate is
coloured: blue (H 95–130), green (H 36–94) or yellow (H 15–35), whichever holds half of the saturated
pixels (else ``other``). A quarter, not a half, because white characters and sun glare cover much of a
blue plate. Otherwise the plate is achromatic: ``white`` when the median brightness V ≥ 110, else
``black``. *Region* is ``cn`` when the text has a CJK character, else ``latin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.crops import CropPlacement, clip_box
from schemas.frames import FrameHeader
from schemas.objects import ObjectCrop
from workers.plate.voting import PlateObservation

SATURATED_SHARE = 0.25


@dataclass(frozen=True)
class PlateFound:
    """The best plate of one crop: the read, and the plate's pixels for the evidence crop."""

    observation: PlateObservation
    plate_image: np.ndarray


def region_of(text: str) -> str:
    return "cn" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "latin"


def plate_kind(image: np.ndarray, quad: np.ndarray) -> str:
    """Background colour of the plate inside ``quad`` (see the module docstring)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(quad).astype(np.int32)], 255)
    pixels = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[mask > 0]
    if len(pixels) < 16:
        return "other"
    h, s, v = (pixels[:, i].astype(np.int16) for i in range(3))
    saturated = (s >= 60) & (v >= 60)
    if saturated.mean() >= SATURATED_SHARE:
        hue = h[saturated]
        votes = {"blue": (hue >= 95) & (hue <= 130), "yellow": (hue >= 15) & (hue <= 35), "green": (hue >= 36) & (hue <= 94)}
        kind, share = max(((k, float(m.mean())) for k, m in votes.items()), key=lambda kv: kv[1])
        return kind if share >= 0.5 else "other"
    return "white" if float(np.median(v)) >= 110 else "black"


def evidence_crop(image: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    """The plate box grown by ``margin`` of its size, clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = image.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    return image[top:bottom, left:right]


def best_plate(
    recognizer: Any, image: np.ndarray, crop: ObjectCrop, where: CropPlacement, *, min_confidence: float,
    margin: float, plate_key: str,
) -> PlateFound | None:
    """The most confident plate read in ``image`` (a vehicle crop), or None below ``min_confidence``."""
    plates = recognizer.recognize(image, mode="scene")
    if not len(plates):
        return None
    confidence = np.asarray(plates.data["text_confidence"], dtype=np.float64)
    best = int(np.argmax(confidence))
    text = str(plates.data["text"][best])
    chars = tuple(round(float(c), 4) for c in plates.data["char_confidence"][best])
    if not text or len(chars) != len(text) or confidence[best] < min_confidence:
        return None
    box_in_frame = where.to_frame(plates.xyxy[best])
    corners = plates.data["corners"][best] if "corners" in plates.data else None
    quad = corners if corners is not None else _box_quad(plates.xyxy[best])
    observation = PlateObservation(
        object_id=crop.object_id,
        sequence=crop.sequence,
        captured_at=crop.captured_at,
        text=text,
        char_confidences=chars,
        confidence=round(float(confidence[best]), 4),
        plate_box=clip_box(box_in_frame, crop.frame_width, crop.frame_height),
        crop_key=plate_key,
        object_key=crop.crop_key,
        kind=plate_kind(image, quad),
    )
    return PlateFound(observation, evidence_crop(image, plates.xyxy[best], margin))


def frame_plates(recognizer: Any, image: np.ndarray, header: FrameHeader, *, min_confidence: float,
                 margin: float) -> list[PlateFound]:
    """Every plate read on a whole frame (checkpoint cameras) at or above ``min_confidence``; keys are set by the
    caller (``crop_key``/``object_key`` empty here), ``object_id`` is ``{frame key}#{plate number}``."""
    plates = recognizer.recognize(image, mode="scene")
    out = []
    height, width = image.shape[:2]
    for i in range(len(plates)):
        text = str(plates.data["text"][i])
        chars = tuple(round(float(c), 4) for c in plates.data["char_confidence"][i])
        confidence = float(plates.data["text_confidence"][i])
        if not text or len(chars) != len(text) or confidence < min_confidence:
            continue
        quad = plates.data["corners"][i] if "corners" in plates.data else _box_quad(plates.xyxy[i])
        observation = PlateObservation(
            object_id=f"{header.idempotency_key()}#{i}", sequence=header.sequence, captured_at=header.captured_at,
            text=text, char_confidences=chars, confidence=round(confidence, 4),
            plate_box=clip_box(plates.xyxy[i], width, height), crop_key="", object_key="",
            kind=plate_kind(image, quad),
        )
        out.append(PlateFound(observation, evidence_crop(image, plates.xyxy[i], margin)))
    return out


def _box_quad(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)
