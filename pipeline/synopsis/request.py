"""What a synopsis is asked for (:class:`SynopsisRequest`), its stable ID and the object-store keys of its outputs.

A request names a camera, a UTC time range, optional filters (classes, colours, plate, zone) and an
optional target length. Its ID is derived from exactly those fields (UUID5 via
:func:`schemas.ids.stable_id`), so asking twice for the same synopsis gives the same keys and a
rebuild overwrites instead of duplicating. Requests travel as JSON through the object store
(``synopsis-requests/{id}.json``); the status of a build is ``synopsis/{camera}/{id}.status.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

from pipeline.config.rules import Point, check_polygon
from schemas.common import CameraId, ClassName, UtcDateTime, WireModel, format_utc
from schemas.ids import stable_id
from schemas.plates import normalise_plate
from schemas.tracks import Colour

CLASS_GROUPS: dict[str, frozenset[str]] = {
    "vehicle": frozenset({"car", "truck", "bus", "motorcycle", "bicycle"}),
}
"""Class names a request may use for several detector classes at once."""

PlateQuery = Annotated[str, Strict(), Field(min_length=1, max_length=16, pattern=r"^[^\s/\\]+$")]


class SynopsisRequest(WireModel):
    """One synopsis: camera, window, filters, target length."""

    camera_id: CameraId = Field(title="Camera ID", description="The camera whose recording is condensed.")
    start: UtcDateTime = Field(title="From", description="Start of the source window (UTC, inclusive).")
    end: UtcDateTime = Field(title="To", description="End of the source window (UTC, exclusive).")
    classes: tuple[ClassName, ...] = Field(
        default=(), title="Classes", description="Detector classes to show ('vehicle' = car, truck, bus, motorcycle, "
        "bicycle); empty: every class.", max_length=32,
    )
    colours: tuple[Colour, ...] = Field(
        default=(), title="Colours", description="Dominant colours to show; empty: any colour.", max_length=10
    )
    plate: PlateQuery | None = Field(
        default=None, title="Plate", description="Only tracks whose plate read contains this text (case and "
        "separators ignored).",
    )
    zone: tuple[Point, ...] | None = Field(
        default=None, title="Zone", description="Only tracks whose ground point entered this polygon "
        "(normalised image coordinates).",
    )
    length_s: Annotated[float, Strict(), Field(ge=1.0, le=3600.0)] | None = Field(
        default=None, title="Length", description="Target synopsis length in seconds; default from configuration."
    )
    requested_by: Annotated[str, Strict(), Field(max_length=200)] = Field(
        default="", title="Requested by", description="Who asked (for the audit trail); not part of the ID."
    )

    @model_validator(mode="after")
    def _window_ordered(self) -> Self:
        if self.end <= self.start:
            msg = f"end {format_utc(self.end)} must be after start {format_utc(self.start)}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _zone_is_polygon(self) -> Self:
        if self.zone is not None:
            check_polygon(self.zone, "zone")
        return self

    def synopsis_id(self) -> str:
        """The stable ID: UUID5 of the fields that decide the output (not ``requested_by``)."""
        defining = {
            "camera_id": self.camera_id,
            "start": format_utc(self.start),
            "end": format_utc(self.end),
            "classes": sorted(set(self.classes)),
            "colours": sorted(set(self.colours)),
            "plate": normalise_plate(self.plate) if self.plate else None,
            "zone": [list(p) for p in self.zone] if self.zone else None,
            "length_s": self.length_s,
        }
        return stable_id("synopsis", json.dumps(defining, sort_keys=True, separators=(",", ":")))

    def wanted_classes(self) -> frozenset[str] | None:
        """Detector class names to keep (groups expanded), or None for every class."""
        if not self.classes:
            return None
        names: set[str] = set()
        for name in self.classes:
            names |= CLASS_GROUPS.get(name, frozenset({name}))
        return frozenset(names)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)


def parse_zone(text: str) -> tuple[Point, ...]:
    """``x1,y1,x2,y2,...`` (normalised) → polygon; exactly two points mean a rectangle's corners."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        msg = f"zone must be comma-separated numbers, got {text!r}"
        raise ValueError(msg) from None
    if len(values) % 2 or len(values) < 4:
        msg = f"zone needs an even number of at least 4 values (x,y pairs), got {len(values)}"
        raise ValueError(msg)
    if any(not 0.0 <= v <= 1.0 for v in values):
        msg = "zone coordinates are normalised: each must be in [0, 1]"
        raise ValueError(msg)
    points = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    if len(points) == 2:
        (x1, y1), (x2, y2) = points
        points = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    check_polygon(points, "zone")
    return tuple(points)


@dataclass(frozen=True)
class SynopsisKeys:
    """Where one synopsis lives in the object store."""

    video: str
    index: str
    status: str
    request: str

    @classmethod
    def of(cls, camera_id: str, synopsis_id: str, prefix: str = "synopsis",
           request_prefix: str = "synopsis-requests") -> SynopsisKeys:
        base = f"{prefix}/{camera_id}/{synopsis_id}"
        return cls(f"{base}.mp4", f"{base}.json", f"{base}.status.json", f"{request_prefix}/{synopsis_id}.json")


BuildState = Literal["queued", "running", "done", "empty", "failed"]


class SynopsisStatus(WireModel):
    """The state of one synopsis build, written by whoever builds it."""

    synopsis_id: str = Field(title="Synopsis ID", description="The request's stable ID.", pattern=r"^[0-9a-f]{32}$")
    camera_id: CameraId = Field(title="Camera ID", description="The camera.")
    state: BuildState = Field(title="State", description="queued, running, done, empty (no objects) or failed.")
    updated_at: UtcDateTime = Field(title="Updated", description="Last change or heartbeat (UTC).")
    worker: Annotated[str, Strict(), Field(max_length=200)] = Field(default="", title="Worker", description="Builder.")
    error: Annotated[str, Strict(), Field(max_length=4000)] = Field(
        default="", title="Error", description="Why the build failed or is empty."
    )
    phase: Annotated[str, Strict(), Field(max_length=40)] = Field(
        default="", title="Phase", description="While running: arrange, background, mattes, render or store."
    )
    progress: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] | None = Field(
        default=None, title="Progress", description="While running: share of the build done (0..1)."
    )
    request: SynopsisRequest = Field(title="Request", description="The request being built.")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)


def window_request(camera_id: str, start: datetime, end: datetime, length_s: float) -> SynopsisRequest:
    """The request of a per-window synopsis (every class, no filter)."""
    return SynopsisRequest(camera_id=camera_id, start=start, end=end, length_s=float(length_s),
                           requested_by="synopsis-worker")
