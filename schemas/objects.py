"""Object crops: the best moments of a tracked object, on ``tubeline.objects.v1``.

The detect worker stores a few crops per vehicle or person track (chosen by size, sharpness
and centrality) in the object store and announces each one here; the plate and face workers
consume these messages and fetch the crop by ``crop_key``.
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
    Score,
    Sequence64,
    SessionId,
    StableId,
    StoreKey,
    UtcDateTime,
    WireMessage,
    check_box_in_frame,
    type_field,
)


class ObjectCrop(WireMessage):
    """One stored crop of a tracked object."""

    SCHEMA_NAME = "object"

    type: Literal["object"] = type_field("object")
    object_id: StableId = Field(
        title="Object ID",
        description="Stable ID of this crop, derived from track and frame (e.g. {track_id}.{sequence}).",
    )
    track_id: StableId = Field(title="Track ID", description="The track the crop belongs to.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    session: SessionId = Field(title="Ingest session", description="Ingest session of the source frame.")
    sequence: Sequence64 = Field(title="Sequence", description="Sequence number of the source frame.")
    captured_at: UtcDateTime = Field(
        title="Capture time", description="UTC capture time of the source frame."
    )
    class_name: ClassName = Field(
        title="Class name", description="Detector class of the object (car, person, ...)."
    )
    class_id: ClassId = Field(title="Class ID", description="Detector class index.")
    score: Score = Field(
        title="Detection score", description="Detector confidence for the object in this frame."
    )
    box: Box = Field(title="Box", description="[x1, y1, x2, y2] of the object in pixels of the source frame.")
    frame_width: FrameSide = Field(title="Frame width", description="Width in pixels of the source frame.")
    frame_height: FrameSide = Field(title="Frame height", description="Height in pixels of the source frame.")
    quality: Score = Field(
        title="Crop quality",
        description="Quality of the crop in [0, 1] from size, sharpness and centrality; higher is better.",
    )
    crop_key: StoreKey = Field(title="Crop key", description="Object-store key of the JPEG crop.")

    @model_validator(mode="after")
    def _box_inside_frame(self) -> Self:
        check_box_in_frame(self.box, self.frame_width, self.frame_height, "box")
        return self

    def idempotency_key(self) -> str:
        """``object_id``: derived from track and frame, so a re-run overwrites the same crop."""
        return self.object_id

    @classmethod
    def example(cls) -> Self:
        track = "34020000001320000001:9c41e2d07a5b:17"
        return cls(
            object_id=f"{track}.1200",
            track_id=track,
            camera_id="34020000001320000001",
            session="5f0c2a9e41b7",
            sequence=1200,
            captured_at=datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
            class_name="car",
            class_id=2,
            score=0.91,
            box=(412.5, 300.0, 655.25, 470.75),
            frame_width=1280,
            frame_height=720,
            quality=0.77,
            crop_key=f"crops/34020000001320000001/2024-05-01/{track}/1200.jpg",
        )
