"""Request and response bodies of the REST API (they are what the OpenAPI document shows).

Hits mirror :mod:`workers.search.hits` field by field and add what a client needs to show them: a
signed ``crop_url`` for the thumbnail, the camera's name, and the ``kind``/``id`` pair that opens
the sighting's detail (``GET /api/sighting``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Box = tuple[float, float, float, float]
Kind = Literal["plate", "track", "face"]


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


def from_hit(model: type[Out], hit: Any, **extra: Any) -> Any:
    """``model`` built from a hit dataclass plus extra fields."""
    data = dataclasses.asdict(hit)
    data.update(extra)
    return model(**data)


class PlateHitOut(Out):
    kind: Literal["plate"] = "plate"
    id: str = Field(description="The sighting ID (read_id).")
    read_id: str
    track_id: str
    camera_id: str
    camera_name: str = ""
    captured_at: datetime
    text: str
    confidence: float
    plate_kind: str
    region: str
    crop_key: str
    crop_url: str | None = None
    box: Box
    revision: int
    model_id: str
    edits: int = 0


class VehicleHitOut(Out):
    kind: Literal["track"] = "track"
    id: str = Field(description="The sighting ID ({track_id}/{segment}).")
    track_id: str
    segment: int
    camera_id: str
    camera_name: str = ""
    started_at: datetime
    ended_at: datetime
    class_name: str
    vehicle_type: str | None
    colour: str
    colour_confidence: float
    score: float
    crop_key: str | None
    crop_url: str | None = None
    box: Box
    plate: str | None = None


class FaceHitOut(Out):
    kind: Literal["face"] = "face"
    id: str = Field(description="The sighting ID (face_id).")
    face_id: str
    track_id: str
    camera_id: str
    camera_name: str = ""
    captured_at: datetime
    score: float = Field(description="Cosine similarity to the query face.")
    match: bool = Field(False, description="score is at or above the threshold the search used.")
    quality: float
    crop_key: str
    crop_url: str | None = None
    box: Box
    model_id: str


class SightingOut(Out):
    kind: Kind
    id: str
    camera_id: str
    camera_name: str
    lat: float | None
    lon: float | None
    time: datetime
    crop_key: str | None
    crop_url: str | None = None
    track_id: str
    clip_start: datetime
    clip_end: datetime
    box: Box | None = None
    text: str | None = None
    score: float | None = None


class AlertOut(Out):
    alert_id: str
    alert_type: str
    camera_id: str
    occurred_at: datetime
    severity: str
    rule_id: str
    track_id: str | None
    message: str
    evidence_keys: tuple[str, ...] = ()
    evidence_urls: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class CameraOut(Out):
    camera_id: str
    name: str
    latitude: float | None
    longitude: float | None
    admin_unit: str
    point_class: str | None
    kind: str | None
    enabled: bool | None
    status: str
    reason: str | None = None
    detail: str = ""
    changed_at: datetime | None = None
    last_seen_at: datetime | None = None
    fps_in: float | None = None
    fps_out: float | None = None
    bitrate_kbps: float | None = None
    in_registry: bool = True


class Results(Out):
    count: int
    scope: str = Field(description="The camera scope the search ran in ('all cameras' or 'N cameras').")


class PlateResults(Results):
    hits: list[PlateHitOut]


class VehicleResults(Results):
    hits: list[VehicleHitOut]


class QueryFaceOut(Out):
    quality: float = Field(description="Overall quality score of the query face (0..1).")
    components: dict[str, float] = Field(description="eye_distance (px), sharpness, yaw, pitch, roll.")
    faces_in_image: int
    model_id: str
    threshold: float = Field(description="Similarity at or above which a hit counts as the same person.")
    image_sha256: str = Field(description="Reference of the stored query image (reuse it as 'query' later).")


class FaceResults(Results):
    query: QueryFaceOut
    hits: list[FaceHitOut]


class TrajectoryOut(Results):
    subject: str = Field(description="The plate, or 'face:<image sha256>'.")
    sightings: list[SightingOut]
    query: QueryFaceOut | None = None


class AlertResults(Results):
    alerts: list[AlertOut]


class CameraList(Results):
    cameras: list[CameraOut]


class SightingDetail(Out):
    sighting: SightingOut
    clip_available: bool = Field(description="Recordings exist for the clip range.")
    camera: CameraOut | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    id: str = Field(min_length=1, max_length=300)
    case: str | None = Field(None, max_length=100, description="Case reference (required).")
    start: datetime | None = Field(None, description="Clip start (default: the sighting's clip range).")
    end: datetime | None = Field(None, description="Clip end (default: the sighting's clip range).")


class ExportOut(Out):
    export_id: str
    url: str
    key: str
    sha256: str
    bytes: int
    camera_id: str
    case: str
    start: datetime
    end: datetime
    duration_s: float
    transcoded: bool = Field(description="True when the recording was re-encoded to H.264 for playback.")
    source_codec: str


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(Out):
    user: dict[str, Any]
    csrf: str | None = Field(None, description="Send back as X-CSRF-Token on POST/DELETE with the session cookie.")
    via: Literal["session", "token"]
    case_pattern: str


class AuditEntries(Out):
    count: int
    entries: list[dict[str, Any]]


class AuditVerifyOut(Out):
    ok: bool
    entries: int
    chains: dict[str, dict[str, Any]]
    problems: list[str]
