"""Request and response bodies of the REST API (they are what the OpenAPI document shows).

Hits extend the query layer's models (:mod:`pipeline.search.hits`, where their fields and descriptions
are defined once) with what a client needs to show them: a signed ``crop_url`` for the thumbnail, the
camera's name, and the ``kind``/``id`` pair that opens the sighting's detail (``GET /api/sighting``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config.rules import Point
from pipeline.search.hits import (
    AlertHit,
    CameraState,
    FaceHit,
    Hit,
    PlateHit,
    Sighting,
    SightingKind,
    TrackHit,
)
from schemas.common import CLASS_NAME_PATTERN
from schemas.tracks import Colour
from workers.api.ids import CAMERA_ID, SIGHTING_ID, Instant

Kind = SightingKind
H = TypeVar("H", bound=Hit)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


def from_hit(model: type[H], hit: Hit, **extra: Any) -> H:
    """``model`` (an API body extending ``hit``'s class) from ``hit`` plus the fields it adds."""
    return model(**{**hit.model_dump(), **extra})


class PlateHitOut(PlateHit):
    """A plate read as a search returns it."""

    kind: Literal["plate"] = "plate"
    id: str = Field(description="The sighting ID (read_id).")
    camera_name: str = ""
    crop_url: str | None = Field(None, description="Signed link to the crop (expires).")


class VehicleHitOut(TrackHit):
    """A vehicle or person track as a search returns it."""

    kind: Literal["track"] = "track"
    id: str = Field(description="The sighting ID ({track_id}/{segment}).")
    camera_name: str = ""
    crop_url: str | None = Field(None, description="Signed link to the crop (expires).")


class FaceHitOut(FaceHit):
    """A face as a face search returns it."""

    kind: Literal["face"] = "face"
    id: str = Field(description="The sighting ID (face_id).")
    camera_name: str = ""
    crop_url: str | None = Field(None, description="Signed link to the face chip (expires).")
    match: bool = Field(False, description="score is at or above the threshold the search used.")


class SightingOut(Sighting):
    """One sighting (a trajectory point, or the subject of a detail view)."""

    crop_url: str | None = Field(None, description="Signed link to the crop (expires).")


class AlertOut(AlertHit):
    """An alert, with signed links to its evidence."""

    evidence_urls: list[str] = Field(default_factory=list, description="Signed links to evidence_keys (expire).")


class CameraOut(CameraState):
    """A camera with its registry record and its latest state."""


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
