"""Face records: an embedded face of a person track, on ``tubeline.faces.v1``.

The face worker embeds a few diverse, good faces per person track (not every frame).
Embeddings are L2-normalised, so the inner product of two embeddings of the same
``model_id`` is their cosine similarity; embeddings of different models never compare.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

from schemas.common import (
    Box,
    CameraId,
    ModelId,
    Pixel,
    Score,
    StableId,
    StoreKey,
    UtcDateTime,
    WireMessage,
    WireModel,
    type_field,
)

MIN_EMBEDDING_DIM = 16
MAX_EMBEDDING_DIM = 4096
NORM_TOLERANCE = 1e-3
"""How far from 1 an embedding's L2 norm may be."""

Component = Annotated[float, Strict(), Field(ge=-1.0, le=1.0)]
Landmark = tuple[Pixel, Pixel]
"""``[x, y]`` in pixels of the source frame."""


class FaceEmbedding(WireModel):
    """A face embedding with the model that produced it."""

    model_id: ModelId = Field(title="Embedding model", description="Model-registry ID of the face embedder.")
    dimension: Annotated[int, Strict(), Field(ge=MIN_EMBEDDING_DIM, le=MAX_EMBEDDING_DIM)] = Field(
        title="Dimension", description="Number of values; equals len(values)."
    )
    values: tuple[Component, ...] = Field(
        title="Values",
        description="The embedding, L2-normalised (norm 1 within 1e-3).",
        min_length=MIN_EMBEDDING_DIM,
        max_length=MAX_EMBEDDING_DIM,
    )

    @model_validator(mode="after")
    def _dimension_matches(self) -> Self:
        if len(self.values) != self.dimension:
            msg = f"embedding has {len(self.values)} values but dimension {self.dimension}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _unit_norm(self) -> Self:
        norm = math.sqrt(math.fsum(v * v for v in self.values))
        if abs(norm - 1.0) > NORM_TOLERANCE:
            msg = f"embedding must be L2-normalised, its norm is {norm:.6f}"
            raise ValueError(msg)
        return self


class FaceQuality(WireModel):
    """How usable the face is for recognition, overall and by component (all in [0, 1], higher is better)."""

    score: Score = Field(title="Overall quality", description="Combined quality used by the quality gate.")
    sharpness: Score = Field(title="Sharpness", description="Focus/motion-blur measure of the face crop.")
    brightness: Score = Field(
        title="Brightness", description="Exposure: 1 for well exposed, towards 0 for too dark or bright."
    )
    frontality: Score = Field(
        title="Frontality", description="1 for a frontal face, towards 0 for profile or tilted."
    )
    resolution: Score = Field(
        title="Resolution", description="Face size relative to the embedder's input (1 at or above it)."
    )
    detection: Score = Field(title="Detection score", description="Face detector confidence.")


class FaceRecord(WireMessage):
    """One embedded face of a person track."""

    SCHEMA_NAME = "face"

    type: Literal["face"] = type_field("face")
    face_id: StableId = Field(
        title="Face ID",
        description="Stable ID of this face, derived from the track and source frame ({track_id}.face.{sequence}).",
    )
    track_id: StableId = Field(title="Track ID", description="The person track the face belongs to.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    captured_at: UtcDateTime = Field(
        title="Capture time", description="UTC capture time of the source frame."
    )
    embedding: FaceEmbedding = Field(title="Embedding", description="The face embedding and its model.")
    quality: FaceQuality = Field(title="Quality", description="Face quality, overall and by component.")
    crop_key: StoreKey = Field(title="Crop key", description="Object-store key of the aligned face crop.")
    box: Box = Field(
        title="Face box", description="[x1, y1, x2, y2] of the face in pixels of the source frame."
    )
    landmarks: tuple[Landmark, Landmark, Landmark, Landmark, Landmark] = Field(
        title="Landmarks",
        description="Five [x, y] points in frame pixels: left eye, right eye, nose tip, left and right mouth corner.",
    )

    def idempotency_key(self) -> str:
        """``face_id``: derived from track and frame, so a re-run overwrites the same record."""
        return self.face_id

    @classmethod
    def example(cls) -> Self:
        track = "34020000001320000001:9c41e2d07a5b:21"
        dimension = 128
        raw = [math.sin(i + 1.0) for i in range(dimension)]
        norm = math.sqrt(math.fsum(v * v for v in raw))
        return cls(
            face_id=f"{track}.face.1210",
            track_id=track,
            camera_id="34020000001320000001",
            captured_at=datetime(2024, 5, 1, 8, 0, 2, 250000, tzinfo=UTC),
            embedding=FaceEmbedding(
                model_id="arcface-r50@1",
                dimension=dimension,
                values=tuple(round(v / norm, 6) for v in raw),
            ),
            quality=FaceQuality(
                score=0.81, sharpness=0.75, brightness=0.9, frontality=0.85, resolution=1.0, detection=0.98
            ),
            crop_key=f"faces/34020000001320000001/2024-05-01/{track}/1210.jpg",
            box=(110.0, 205.0, 134.0, 236.0),
            landmarks=((117.0, 216.0), (128.0, 216.5), (122.5, 223.0), (118.0, 229.0), (127.5, 229.5)),
        )
