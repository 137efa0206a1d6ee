"""What the query layer returns: one frozen dataclass per kind of hit, ready for an API or a UI.

Every time is a timezone-aware UTC ``datetime``. Boxes are ``(x1, y1, x2, y2)`` in pixels of the
source frame. ``crop_key`` is an object-store key (the API turns it into a presigned URL).
``dataclasses.asdict`` gives a JSON-friendly dict (datetimes aside).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Box = tuple[float, float, float, float]
SightingKind = Literal["plate", "track", "face"]


class QueryError(ValueError):
    """The query itself is invalid (bad plate pattern, wrong embedding size, unknown model): a 400, not a 500."""


@dataclass(frozen=True)
class PlateHit:
    """One plate read (the latest revision of one vehicle track's plate)."""

    read_id: str
    track_id: str
    camera_id: str
    captured_at: datetime
    text: str
    confidence: float
    plate_kind: str
    region: str
    crop_key: str
    box: Box
    revision: int
    model_id: str
    edits: int = 0
    """Edit distance between the query and ``text`` (0 for exact and wildcard matches)."""


@dataclass(frozen=True)
class TrackHit:
    """One closed track (segment) of a vehicle or person, with its attributes and its plate when one was read."""

    track_id: str
    segment: int
    camera_id: str
    started_at: datetime
    ended_at: datetime
    class_name: str
    vehicle_type: str | None
    colour: str
    colour_confidence: float
    score: float
    crop_key: str | None
    box: Box
    """The largest box of the track's path (where the object was seen best)."""
    plate: str | None = None
    upper_colour: str | None = None
    lower_colour: str | None = None

    @property
    def sighting_id(self) -> str:
        """The ID ``SearchService.sighting("track", …)`` takes: ``{track_id}/{segment}``."""
        return f"{self.track_id}/{self.segment}"


@dataclass(frozen=True)
class FaceHit:
    """One embedded face, scored by exact cosine similarity to the query."""

    face_id: str
    track_id: str
    camera_id: str
    captured_at: datetime
    score: float
    quality: float
    crop_key: str
    box: Box
    model_id: str


@dataclass(frozen=True)
class Sighting:
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


@dataclass(frozen=True)
class AlertHit:
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
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraState:
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
