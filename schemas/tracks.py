"""Track summaries: one message per closed track (or track segment), on ``tubeline.tracks.v1``.

Synopsis uses the box path, search uses class, colour and vehicle type, and the indexer
stores the summary as the durable record of a sighting. A track that outlives the
detect worker's maximum duration is summarised in consecutive segments (``segment`` 0, 1,
...) under the same track ID; each segment has its own idempotency key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, Strict, model_validator

from schemas.common import (
    CameraId,
    ClassId,
    ClassName,
    Count,
    FrameSide,
    Pixel,
    Score,
    StableId,
    StoreKey,
    UtcDateTime,
    WireMessage,
    check_box_in_frame,
    type_field,
)

Colour = Literal["white", "black", "grey", "silver", "red", "blue", "green", "yellow", "brown", "unknown"]
"""The fixed palette of colours (docs/detect.md, "Colours"); ``unknown`` when no colour could be decided."""

VehicleType = Literal["car", "van", "bus", "truck", "motorcycle", "bicycle", "other"]
"""Vehicle types; a track of a non-vehicle class has ``vehicle_type: null``."""

ClosedReason = Literal["lost", "max_duration", "rebalance", "shutdown"]
"""Why the summary was emitted: the object was lost, the track hit the maximum duration,
the camera's partition moved to another worker, or the worker stopped."""

MAX_PATH_POINTS = 20000
"""At 5 fps, about 66 minutes of path; longer tracks are split by ``max_duration``."""

Offset = Annotated[float, Strict(), Field(ge=0.0, le=7 * 86400.0)]


def _check_point(point: tuple[float, float, float, float, float]) -> tuple[float, float, float, float, float]:
    _, x1, y1, x2, y2 = point
    if x2 < x1 or y2 < y1:
        msg = f"path point must be [t, x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, got {list(point)}"
        raise ValueError(msg)
    return point


PathPoint = Annotated[tuple[Offset, Pixel, Pixel, Pixel, Pixel], AfterValidator(_check_point)]
"""``[t, x1, y1, x2, y2]``: seconds after ``started_at`` and the box in frame pixels."""


class TrackSummary(WireMessage):
    """Summary of a closed track: who, where, when, and the path it took."""

    SCHEMA_NAME = "track"

    type: Literal["track"] = type_field("track")
    track_id: StableId = Field(
        title="Track ID",
        description="Tracker identity, unique across processes ({camera}:{session}:{n}).",
    )
    segment: Count = Field(
        default=0,
        title="Segment",
        description="0 for the first summary of the track; +1 for each later one after max_duration.",
    )
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    class_name: ClassName = Field(title="Class name", description="Dominant detector class over the track.")
    class_id: ClassId = Field(title="Class ID", description="Detector class index of class_name.")
    started_at: UtcDateTime = Field(
        title="Start time", description="UTC capture time of the segment's first frame."
    )
    ended_at: UtcDateTime = Field(
        title="End time", description="UTC capture time of the segment's last frame."
    )
    frame_width: FrameSide = Field(
        title="Frame width", description="Width in pixels of the frames the path refers to."
    )
    frame_height: FrameSide = Field(
        title="Frame height", description="Height in pixels of the frames the path refers to."
    )
    path: tuple[PathPoint, ...] = Field(
        title="Box path",
        description="Per-frame [t, x1, y1, x2, y2]; t in seconds after started_at, non-decreasing.",
        min_length=1,
        max_length=MAX_PATH_POINTS,
    )
    mean_score: Score = Field(title="Mean score", description="Mean detector confidence over the track.")
    best_crop_key: StoreKey | None = Field(
        title="Best crop key",
        description="Object-store key of the best crop of the track; null when no crop was stored.",
    )
    colour: Colour = Field(title="Dominant colour", description="Dominant colour from the fixed palette.")
    colour_confidence: Score = Field(
        title="Colour confidence", description="Confidence in the colour; 0 when colour is unknown."
    )
    upper_colour: Colour | None = Field(
        default=None,
        title="Upper-body colour",
        description="Persons: colour of the top (jacket, shirt) from the palette; null for other classes.",
    )
    lower_colour: Colour | None = Field(
        default=None,
        title="Lower-body colour",
        description="Persons: colour of the trousers or skirt from the palette; null for other classes.",
    )
    vehicle_type: VehicleType | None = Field(
        title="Vehicle type", description="Vehicle type for vehicle classes; null for other classes."
    )
    closed_reason: ClosedReason = Field(title="Closed reason", description="Why this summary was emitted.")

    @model_validator(mode="after")
    def _times_ordered(self) -> Self:
        if self.ended_at < self.started_at:
            msg = f"ended_at {self.ended_at.isoformat()} is before started_at {self.started_at.isoformat()}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _path_consistent(self) -> Self:
        duration = (self.ended_at - self.started_at).total_seconds()
        previous = 0.0
        for index, point in enumerate(self.path):
            t = point[0]
            if t < previous:
                msg = f"path[{index}] t={t} is before the previous point's t={previous}"
                raise ValueError(msg)
            if t > duration + 1e-3:
                msg = f"path[{index}] t={t} is after the track's end ({duration} s after its start)"
                raise ValueError(msg)
            check_box_in_frame(point[1:], self.frame_width, self.frame_height, f"path[{index}]")
            previous = t
        return self

    def idempotency_key(self) -> str:
        """``{track_id}/{segment}``: re-closing the same track segment overwrites it."""
        return f"{self.track_id}/{self.segment}"

    @classmethod
    def example(cls) -> Self:
        track = "34020000001320000001:9c41e2d07a5b:17"
        start = datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC)
        return cls(
            track_id=track,
            camera_id="34020000001320000001",
            class_name="car",
            class_id=2,
            started_at=start,
            ended_at=start + timedelta(seconds=0.4),
            frame_width=1280,
            frame_height=720,
            path=(
                (0.0, 412.5, 300.0, 655.25, 470.75),
                (0.2, 430.0, 302.0, 672.0, 473.0),
                (0.4, 448.5, 305.0, 690.0, 476.5),
            ),
            mean_score=0.88,
            best_crop_key=f"crops/34020000001320000001/2024-05-01/{track}/1200.jpg",
            colour="white",
            colour_confidence=0.64,
            vehicle_type="car",
            closed_reason="lost",
        )
