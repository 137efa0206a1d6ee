"""Request and response bodies of the REST API (they are what the OpenAPI document shows).

Hits mirror :mod:`pipeline.search.hits` field by field and add what a client needs to show them: a
signed ``crop_url`` for the thumbnail, the camera's name, and the ``kind``/``id`` pair that opens
the sighting's detail (``GET /api/sighting``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config.rules import Point
from schemas.common import CLASS_NAME_PATTERN
from schemas.tracks import Colour
from workers.api.ids import CAMERA_ID, SIGHTING_ID, Instant

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
    upper_colour: str | None = Field(None, description="Persons: colour of the top.")
    lower_colour: str | None = Field(None, description="Persons: colour of the trousers or skirt.")
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


class PersonResults(Results):
    hits: list[VehicleHitOut] = Field(description="Person tracks (kind 'track'), with upper and lower colours.")


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
    id: str = Field(pattern=SIGHTING_ID, description="The sighting's ID (as in search results).")
    case: str | None = Field(None, max_length=100, description="Case reference (required).")
    start: Instant | None = Field(None, description="Clip start (default: the sighting's clip range).")
    end: Instant | None = Field(None, description="Clip end (default: the sighting's clip range).")


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


class TokenOut(Out):
    id: str
    label: str
    created_at: datetime
    expires_at: datetime | None = Field(None, description="After this the token no longer authenticates.")


class ScopeOut(Out):
    all_cameras: bool
    cameras: list[str]
    units: list[str]


class UserOut(Out):
    name: str
    role: Literal["admin", "investigator", "operator", "auditor"]
    scope: ScopeOut
    permissions: list[str]
    tokens: list[TokenOut]
    disabled: bool
    created_at: datetime


class UserList(Out):
    users: list[UserOut]


class SessionOut(Out):
    user: UserOut
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


# -- synopses ---------------------------------------------------------------------------------------
class SynopsisRequestIn(BaseModel):
    """A synopsis to build: camera, window, filters, length (see ``workers.synopsis.SynopsisRequest``)."""

    model_config = ConfigDict(extra="forbid")

    camera_id: str = Field(pattern=CAMERA_ID, description="The camera whose recording is condensed.")
    start: Instant = Field(description="Start of the source window (with a time zone).")
    end: Instant = Field(description="End of the source window (with a time zone).")
    classes: list[Annotated[str, Field(pattern=CLASS_NAME_PATTERN)]] = Field(
        default_factory=list, max_length=32, description="Detector classes to show ('person', 'vehicle', 'car' …); "
        "empty: all.")
    colours: list[Colour] = Field(default_factory=list, max_length=10, description="Dominant colours; empty: any.")
    plate: str | None = Field(None, min_length=1, max_length=16, pattern=r"^[^\s/\\]+$",
                              description="Only tracks whose plate read contains this text.")
    zone: list[Point] | None = Field(
        None, min_length=3, max_length=64,
        description="Only tracks that entered this polygon (normalised x, y pairs, at least 3).")
    length_s: float | None = Field(None, ge=1.0, le=3600.0, description="Target length; default from configuration.")
    case: str | None = Field(None, max_length=100, description="Case reference (optional; recorded in the audit log).")


class SynopsisOut(Out):
    synopsis_id: str
    camera_id: str
    camera_name: str = ""
    state: Literal["queued", "running", "done", "empty", "failed"]
    updated_at: datetime
    error: str = ""
    phase: str = Field("", description="While running: arrange, background, mattes, render or store.")
    progress: float | None = Field(None, description="While running: share of the build done (0..1).")
    start: datetime
    end: datetime
    classes: list[str]
    colours: list[str]
    plate: str | None
    zone: list[tuple[float, float]] | None
    length_s: float | None
    requested_by: str
    url: str = Field(description="This synopsis (status, and the index once built).")
    video_url: str | None = Field(None, description="The MP4, once built.")


class RecordedSpan(Out):
    start: datetime
    end: datetime


class RecordingCoverage(Out):
    camera_id: str
    spans: list[RecordedSpan] = Field(description="Recorded time, gaps under 2 s joined, oldest first.")
    latest_end: datetime | None = Field(None, description="End of the newest recording (a window default).")


class SynopsisList(Results):
    synopses: list[SynopsisOut]


class SynopsisObjectOut(Out):
    number: int = Field(description="Position of the object in the index (original order).")
    track_id: str
    sighting_id: str = Field(description="Opens the track's sighting detail (kind 'track').")
    class_name: str
    colour: str
    plate: str | None
    original_start: datetime
    original_end: datetime
    clipped: bool
    speed: float = Field(description="Time-lapse factor (1: real time).")
    synopsis_start_s: float
    synopsis_end_s: float


class SynopsisDetail(Out):
    synopsis: SynopsisOut
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    window_start: datetime
    window_end: datetime
    metrics: dict[str, Any]
    objects: list[SynopsisObjectOut]


class SynopsisHitOut(Out):
    object: SynopsisObjectOut
    frame: int = Field(description="The synopsis frame clicked.")
    box: tuple[int, int, int, int] = Field(description="The object's box in that frame (synopsis pixels).")
    original_time: datetime = Field(description="The original moment shown in that frame.")
    clip_start: datetime = Field(description="Start of the original clip a clip request would cut.")
    clip_end: datetime = Field(description="End of that clip.")


class SynopsisClipRequest(BaseModel):
    """A click on the synopsis (time and pixel, as for ``/at``) to cut the original clip of that object."""

    model_config = ConfigDict(extra="forbid")

    t: float = Field(ge=0.0, le=86_400.0, description="Seconds into the synopsis.")
    x: float = Field(0.0, ge=0.0, le=100_000.0, description="Pixel column in synopsis pixels.")
    y: float = Field(0.0, ge=0.0, le=100_000.0, description="Pixel row in synopsis pixels.")
    number: int | None = Field(None, ge=0, description="Instead of x, y: the object by its number in the index.")
    case: str | None = Field(None, max_length=100, description="Case reference (required).")


class SynopsisClipOut(Out):
    hit: SynopsisHitOut
    export: ExportOut
    offset_s: float = Field(description="Seconds into the clip where the clicked moment is.")
