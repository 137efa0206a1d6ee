"""The plate pipeline: find plates (whole frame, vehicle boxes, or a tight crop), rectify, read, apply the
grammar, and return one ``Detections`` row per plate with its text columns.

In scenes, reads that fit no configured plate grammar are dropped (``valid_only``). Tight crops (a plate
filling the picture) are read three ways — from the detector's corners after padding the crop
with a border, as the whole crop, and as the band of rows holding the characters — and the readings are ranked together (:mod:`models.plates.scoring`). In
``auto`` mode a picture is treated as a crop when it is small and plate-shaped.
"""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np

from models.plates.detector import ClpPlateDetector
from models.plates.reader import PpocrPlateReader, with_reads
from pipeline.core import Detections

logger = logging.getLogger(__name__)

Mode = Literal["auto", "scene", "crop"]


def looks_like_crop(image: np.ndarray) -> bool:
    """Small and plate-shaped (at most 200 px tall, aspect 0.8–6.5: motorcycle plates are near square)."""
    height, width = image.shape[:2]
    return height <= 200 and 0.8 <= width / max(height, 1) <= 6.5


class PlateRecognizer:
    """Detector + reader + grammar behind one call; ``source`` of the result names both models."""

    def __init__(
        self,
        detector: ClpPlateDetector,
        reader: PpocrPlateReader,
        crop_score: float = 0.1,
        valid_only: bool = True,
    ) -> None:
        self.detector = detector
        self.reader = reader
        self.crop_score = crop_score
        self.valid_only = valid_only
        self.model_id = f"{detector.model_id}+{reader.model_id}"

    def recognize(
        self, image: np.ndarray, regions: Detections | None = None, mode: Mode = "auto"
    ) -> Detections:
        """Plates in ``image``; with ``regions`` (e.g. vehicles) only inside those boxes, linked by ``parent_index``."""
        if mode == "crop" or (mode == "auto" and regions is None and looks_like_crop(image)):
            return self.read_crop(image)
        if regions is not None:
            return self._in_regions(image, regions)
        plates = self.detector.detect(image)
        return self._read(image, plates)

    def _read(self, image: np.ndarray, plates: Detections) -> Detections:
        """Read detected plates; in scenes only grammar-valid reads are kept (the rest are not plates
        of a configured region, or not plates at all)."""
        out = self.reader.read(image, plates) if len(plates) else _empty_reads(self.model_id)
        if self.valid_only and len(out):
            out = out[out.data["valid"]]
        return out.replace(source=self.model_id)

    def _in_regions(self, image: np.ndarray, regions: Detections) -> Detections:
        height, width = image.shape[:2]
        parts = []
        for i, (x1, y1, x2, y2) in enumerate(regions.xyxy):
            mx, my = 0.05 * (x2 - x1), 0.05 * (y2 - y1)
            left, top = int(max(0, x1 - mx)), int(max(0, y1 - my))
            right, bottom = int(min(width, x2 + mx)), int(min(height, y2 + my))
            if right - left < 16 or bottom - top < 8:
                continue
            crop = image[top:bottom, left:right]
            found = self.detector.detect(crop)
            if not len(found):
                continue
            shift = np.array([left, top], dtype=np.float32)
            found = found.replace(
                xyxy=found.xyxy + np.tile(shift, 2),
                data={**found.data, "corners": found.data["corners"] + shift},
            )
            read = self._read(image, found)
            parts.append(read.with_data(parent_index=np.full(len(read), i, dtype=np.int64)))
        if not parts:
            return _empty_reads(self.model_id).with_data(parent_index=np.zeros(0, np.int64))
        return Detections.merge(parts).replace(source=self.model_id)

    def read_crop(self, crop: np.ndarray) -> Detections:
        """One plate filling ``crop``: the detector's corners, the whole crop and the crop's character band, ranked
        together."""
        height, width = crop.shape[:2]
        border = max(height, width) // 2
        padded = cv2.copyMakeBorder(
            crop, border, border, border, border, cv2.BORDER_CONSTANT, value=(127, 127, 127)
        )
        found = self.detector.detect(padded, score=self.crop_score)
        whole = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
        readings = self.reader.candidates(crop, whole) + self.reader.band_reading(crop)
        quad = whole
        if len(found):
            best = int(np.argmax(found.confidence))
            quad = found.data["corners"][best] - border
            readings += self.reader.candidates(padded, quad + border)
        read = self.reader.rank(readings)
        score = float(found.confidence[best]) if len(found) else 1.0
        box = np.concatenate([quad.min(axis=0).clip(0), quad.max(axis=0).clip(None, [width, height])])
        row = Detections(
            xyxy=box[None].astype(np.float32),
            confidence=np.array([score], dtype=np.float32),
            class_id=np.zeros(1, np.int32),
            data={"corners": quad[None].astype(np.float32)},
            source=self.model_id,
            class_names=("plate",),
        )
        return with_reads(row, [read]).clipped(width, height)


def _empty_reads(source: str) -> Detections:
    return with_reads(
        Detections.empty(source, ("plate",)).with_data(corners=np.zeros((0, 4, 2), np.float32)), []
    )
