"""Detections: what the detect worker found in one frame, on ``tubeline.detections.v1``.

One message per analysed frame, including frames where nothing was found (an empty
``objects`` list says "looked and saw nothing", which is different from a missing frame).
It points back at its frame by ``camera_id``/``session``/``sequence``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from schemas.common import (
    Box,
    CameraId,
    ClassId,
    ClassName,
    FrameSide,
    ModelId,
    Score,
    Sequence64,
    SessionId,
    StableId,
    UtcDateTime,
    WireMessage,
    WireModel,
    check_box_in_frame,
    type_field,
)

MAX_OBJECTS_PER_FRAME = 2000


class DetectedObject(WireModel):
    """One detected (and possibly tracked) object in a frame."""

    box: Box = Field(
        title="Box",
        description="[x1, y1, x2, y2] in pixels of the frame, clipped to the frame.",
    )
    class_name: ClassName = Field(
        title="Class name", description="Detector class name, lower case (person, car, ...)."
    )
    class_id: ClassId = Field(title="Class ID", description="Detector class index in the model's label list.")
    score: Score = Field(title="Score", description="Detector confidence in [0, 1].")
    track_id: StableId | None = Field(
        default=None,
        title="Track ID",
        description="Tracker identity, unique across processes ({camera}:{session}:{n}); null when untracked.",
    )


class Detections(WireMessage):
    """All objects the detector (and tracker) reported for one frame."""

    SCHEMA_NAME = "detections"

    type: Literal["detections"] = type_field("detections")
    camera_id: CameraId = Field(title="Camera ID", description="The frame's camera; also the Kafka key.")
    session: SessionId = Field(
        title="Ingest session", description="The frame's ingest session (from its headers)."
    )
    sequence: Sequence64 = Field(
        title="Sequence", description="The frame's sequence number within its session."
    )
    captured_at: UtcDateTime = Field(title="Capture time", description="UTC capture time of the frame.")
    frame_width: FrameSide = Field(title="Frame width", description="Width in pixels of the analysed frame.")
    frame_height: FrameSide = Field(
        title="Frame height", description="Height in pixels of the analysed frame."
    )
    model_id: ModelId = Field(
        title="Detector model", description="Model-registry ID of the detector that ran."
    )
    objects: tuple[DetectedObject, ...] = Field(
        title="Objects",
        description="Detected objects; empty when the frame was analysed and nothing was found.",
        max_length=MAX_OBJECTS_PER_FRAME,
    )

    @model_validator(mode="after")
    def _boxes_inside_frame(self) -> Self:
        for index, obj in enumerate(self.objects):
            check_box_in_frame(obj.box, self.frame_width, self.frame_height, f"objects[{index}].box")
        return self

    @model_validator(mode="after")
    def _track_ids_unique(self) -> Self:
        seen: set[str] = set()
        for obj in self.objects:
            if obj.track_id is None:
                continue
            if obj.track_id in seen:
                msg = f"track {obj.track_id} appears twice in one frame"
                raise ValueError(msg)
            seen.add(obj.track_id)
        return self

    def idempotency_key(self) -> str:
        """``{camera_id}/{session}/{sequence}``: the frame's key; a re-run overwrites."""
        return f"{self.camera_id}/{self.session}/{self.sequence}"

    @classmethod
    def example(cls) -> Self:
        return cls(
            camera_id="34020000001320000001",
            session="5f0c2a9e41b7",
            sequence=1200,
            captured_at=datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
            frame_width=1280,
            frame_height=720,
            model_id="yolov8n-coco@1",
            objects=(
                DetectedObject(
                    box=(412.5, 300.0, 655.25, 470.75),
                    class_name="car",
                    class_id=2,
                    score=0.91,
                    track_id="34020000001320000001:9c41e2d07a5b:17",
                ),
                DetectedObject(box=(100.0, 200.0, 140.0, 330.0), class_name="person", class_id=0, score=0.42),
            ),
        )
