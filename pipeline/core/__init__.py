"""Core types shared by every stage: the detections container and decoded frames."""

from __future__ import annotations

from pipeline.core.detections import Detections, box_iou
from pipeline.core.frame import Frame

__all__ = ["Detections", "Frame", "box_iou"]
