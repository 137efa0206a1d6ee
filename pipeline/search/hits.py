"""What the query layer returns: one frozen model per kind of hit, ready for an API or a UI.

Every time is a timezone-aware UTC ``datetime``. Boxes are ``(x1, y1, x2, y2)`` in pixels of the
source frame. ``crop_key`` is an object-store key (the API turns it into a presigned URL).
``model_dump()`` gives a plain dict. These are the only definition of a hit's fields: the API's
response bodies (:mod:`workers.api.models`) extend them with what a client needs, and the field
docstrings here are the descriptions its OpenAPI document shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Box = tuple[float, float, float, float]
SightingKind = Literal["plate", "track", "face"]
PlateMode = Literal["exact", "wildcard", "fuzzy"]


class QueryError(ValueError):
    """The query itself is invalid (bad plate pattern, wrong embedding size, unknown model): a 400, not a 500."""


class Hit(BaseModel):
    """Base of the hits: frozen, no unknown fields, field docstrings as descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class PlateHit(Hit):
    """One plate read (the latest revision of one vehicle track's plate)."""

    read_id: str
    """``{track_id}.plate.{revision}``."""
    track_id: str
    camera_id: str
    captured_at: datetime
    """Capture time of the frame of the best plate crop."""
    text: str
    """Normalised plate text: upper case, no separators."""
    confidence: float
    """Voted read confidence (0..1)."""
    plate_kind: str
    """Plate background colour (blue, yellow, green, white, black, other)."""
    region: str
    """``cn`` (mainland Chinese) or ``latin``."""
    crop_key: str
    """Object-store key of the plate crop."""
    box: Box
    """The plate's box in the source frame."""
    revision: int
    """Higher when a better read of the same track replaced an earlier one."""
    model_id: str
    """The plate reader that produced the read."""
    edits: int = 0
    """Edit distance between the query and ``text`` (0 for exact and wildcard matches)."""


class TrackHit(Hit):
    """One closed track (segment) of a vehicle or person, with its attributes and its plate when one was read."""

    track_id: str
    segment: int
    """Segment of a long track (tracks are cut into segments as they are indexed)."""
    camera_id: str
    started_at: datetime
    ended_at: datetime
    class_name: str
    """Detector class (car, truck, bus, ...)."""
    vehicle_type: str | None
    colour: str
    """Dominant colour of the vehicle."""
    colour_confidence: float
    score: float
    """Mean detector score over the track."""
    crop_key: str | None
    """Object-store key of the track's best crop."""
    box: Box
    """The largest box of the track's path (where the object was seen best)."""
    plate: str | None = None
    upper_colour: str | None = None
    """Persons: colour of the top."""
    lower_colour: str | None = None
    """Persons: colour of the trousers or skirt."""

    @property
    def sighting_id(self) -> str:
        """The ID ``SearchService.sighting("track", …)`` takes: ``{track_id}/{segment}``."""
        return f"{self.track_id}/{self.segment}"


class FaceHit(Hit):
    """One embedded face, scored by exact cosine similarity to the query."""

    face_id: str
    """``{track_id}.face.{sequence}``."""
    track_id: str
    camera_id: str
    captured_at: datetime
    score: float
    """Cosine similarity to the query face."""
    quality: float
    """Face quality score (0..1) from resolution, sharpness and pose."""
    crop_key: str
    """Object-store key of the aligned face chip."""
    box: Box
    """The face's box in the source frame."""
    model_id: str
    """The embedding model; only faces of the query's model are compared."""


class Sighting(Hit):
    """One sighting on the map: what, where (camera and its position), when, and the clip range around it."""

    kind: SightingKind
    id: str
    """read_id (plate), ``{track_id}/{segment}`` (track) or face_id (face)."""
    camera_id: str
    camera_name: str
    lat: float | None
    lon: float | None
    time: datetime
    crop_key: str | None
    track_id: str
    clip_start: datetime
    clip_end: datetime
    box: Box | None = None
    text: str | None = None
    """The plate text for plate sightings."""
    score: float | None = None
    """Read confidence (plate), detector score (track) or similarity to the query (face trajectory)."""


class AlertHit(Hit):
    """One alert as raised by the rules, plate or ingest workers."""

    alert_id: str
    alert_type: str
    camera_id: str
    occurred_at: datetime
    severity: str
    rule_id: str
    track_id: str | None
    message: str
    evidence_keys: tuple[str, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)


class CameraState(Hit):
    """A camera's registry record and its latest connection state and statistics."""

    camera_id: str
    name: str
    latitude: float | None
    longitude: float | None
    admin_unit: str
    point_class: str | None
    kind: str | None
    enabled: bool | None
    status: Literal["online", "offline", "reconnecting", "unknown"]
    """From the latest connection event; ``online`` when statistics arrived after it; ``unknown`` with no event."""
    reason: str | None = None
    detail: str = ""
    changed_at: datetime | None = None
    """Time of the latest connection event (online, offline, reconnecting)."""
    last_seen_at: datetime | None = None
    """Time of the latest event of any kind, statistics included."""
    fps_in: float | None = None
    fps_out: float | None = None
    bitrate_kbps: float | None = None
    in_registry: bool = True
