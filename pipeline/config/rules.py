"""Configuration of the rules worker: per-camera zones, lines and the rules that watch them.

Geometry is in **normalised image coordinates**: ``x`` and ``y`` run from 0 to 1 across the
frame's width and height, origin top-left, ``y`` pointing down. The same zone therefore fits
a camera whether detect analyses it at 1280×720 or 640×360. An object's position is the
bottom-centre of its box (its "ground point"): where a person's feet or a car's wheels are.

Rules are a list discriminated by ``kind`` (``zone_intrusion``, ``line_crossing``,
``loitering``, ``crowding``, ``camera_offline``). Each camera entry holds its own zones, lines
and rules; the entry with ``camera_id: "*"`` applies to every camera (for example a
``camera_offline`` rule or a whole-frame crowding rule), in addition to that camera's own entry.

Cross-field checks are the small named functions at the top of this module: polygons have at
least three points, a non-zero area and no self-crossing edges; line endpoints differ; zone,
line and rule IDs are unique; every rule names a zone or line defined in its own entry.
See ``docs/rules.md`` for the semantics of each rule kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section
from schemas.alerts import Severity
from schemas.cameras import OfflineReason

ALL_CAMERAS = "*"
"""The ``camera_id`` of the entry whose zones, lines and rules apply to every camera."""

RULE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
CAMERA_ID_OR_ALL_PATTERN = r"^(\*|[A-Za-z0-9_.:-]{1,64})$"
CLASS_NAME_PATTERN = r"^[a-z0-9][a-z0-9_ -]{0,63}$"
MIN_LINE_LENGTH = 1e-3
"""Line endpoints closer than this (normalised units) count as the same point."""

Coordinate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Point = tuple[Coordinate, Coordinate]
ClassName = Annotated[str, Field(pattern=CLASS_NAME_PATTERN)]
Direction = Literal["a_to_b", "b_to_a", "both"]


# -- named cross-field checks --------------------------------------------------------------------
def _cross(o: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when the open segments p1-p2 and q1-q2 properly cross (touching ends do not count)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def check_polygon(points: Sequence[Point], what: str) -> None:
    """A zone polygon needs ≥ 3 points, a non-zero area and edges that do not cross each other."""
    if len(points) < 3:
        msg = f"{what}: a polygon needs at least 3 points, got {len(points)}"
        raise ValueError(msg)
    n = len(points)
    area2 = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n))
    if abs(area2) < 1e-9:
        msg = f"{what}: the polygon has no area (its points are collinear or repeated)"
        raise ValueError(msg)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # neighbours through the closing edge
            if _segments_cross(*edges[i], *edges[j]):
                msg = f"{what}: polygon edges {i} and {j} cross each other (the polygon is not simple)"
                raise ValueError(msg)


def check_line(a: Point, b: Point, what: str) -> None:
    """A counting line needs two distinct endpoints."""
    if abs(a[0] - b[0]) < MIN_LINE_LENGTH and abs(a[1] - b[1]) < MIN_LINE_LENGTH:
        msg = f"{what}: the line's endpoints a and b must differ, got {list(a)} and {list(b)}"
        raise ValueError(msg)


def check_unique_ids(ids: Iterable[str], what: str) -> None:
    """IDs in one list (zones, lines, rules, cameras) must not repeat."""
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            msg = f"duplicate {what} id {ident!r}"
            raise ValueError(msg)
        seen.add(ident)


def check_reference(ref: str, known: Iterable[str], what: str, rule_id: str) -> None:
    """A rule must name a zone or line defined in the same camera entry."""
    known = list(known)
    if ref not in known:
        have = ", ".join(repr(k) for k in known) or "none"
        msg = f"rule {rule_id!r} names {what} {ref!r}, which this camera entry does not define (defined: {have})"
        raise ValueError(msg)


# -- geometry ------------------------------------------------------------------------------------
class ZoneSpec(Section):
    """A named polygon in normalised image coordinates."""

    id: str = Field(..., title="Zone ID", description="Unique within the camera entry.", pattern=RULE_ID_PATTERN)
    name: str = Field("", title="Name", description="Human-readable name used in alert messages.", max_length=100)
    polygon: list[Point] = Field(
        ...,
        title="Polygon",
        description="Vertices [x, y] in normalised image coordinates (0..1, origin top-left), in order.",
        min_length=1,
        max_length=64,
    )

    @model_validator(mode="after")
    def _polygon_is_valid(self) -> ZoneSpec:
        check_polygon(self.polygon, f"zone {self.id!r}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.id


class LineSpec(Section):
    """A directed line segment from ``a`` to ``b`` in normalised image coordinates."""

    id: str = Field(..., title="Line ID", description="Unique within the camera entry.", pattern=RULE_ID_PATTERN)
    name: str = Field("", title="Name", description="Human-readable name used in alert messages.", max_length=100)
    a: Point = Field(..., title="Point A", description="First endpoint [x, y], normalised (0..1).")
    b: Point = Field(..., title="Point B", description="Second endpoint [x, y], normalised (0..1).")

    @model_validator(mode="after")
    def _endpoints_differ(self) -> LineSpec:
        check_line(self.a, self.b, f"line {self.id!r}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.id


# -- rules ---------------------------------------------------------------------------------------
class _RuleBase(Section):
    id: str = Field(
        ..., title="Rule ID", description="Unique across the whole rules section; alerts carry it.",
        pattern=RULE_ID_PATTERN,
    )
    name: str = Field("", title="Name", description="Human-readable name.", max_length=100)
    severity: Severity = Field("medium", title="Severity", description="Severity of the alerts this rule raises.")
    enabled: bool = Field(True, title="Enabled", description="Disabled rules are kept but never evaluated.")
    cooldown_s: float = Field(
        60.0,
        title="Cool-down",
        description="Seconds (event time) after an alert during which the same rule, camera and subject "
        "(track, or the camera itself) raise no further alert.",
        ge=0,
        le=86_400,
    )


class _ObjectRule(_RuleBase):
    classes: list[ClassName] = Field(
        default_factory=list,
        title="Classes",
        description="Detector class names that count (person, car, ...); empty = every class.",
        max_length=100,
    )
    min_score: float = Field(
        0.0, title="Minimum score", description="Objects with a lower detector score are ignored.", ge=0, le=1
    )


class ZoneIntrusionRule(_ObjectRule):
    """An object of a listed class is inside the zone (fires once per stay of a track)."""

    kind: Literal["zone_intrusion"] = Field(title="Kind", description="Rule kind discriminator.")
    zone: str = Field(..., title="Zone", description="ID of a zone in the same camera entry.", pattern=RULE_ID_PATTERN)


class LineCrossingRule(_ObjectRule):
    """A track's ground point crosses the line segment in the configured direction."""

    kind: Literal["line_crossing"] = Field(title="Kind", description="Rule kind discriminator.")
    line: str = Field(..., title="Line", description="ID of a line in the same camera entry.", pattern=RULE_ID_PATTERN)
    direction: Direction = Field(
        "both",
        title="Direction",
        description="a_to_b: from the left to the right of the arrow a→b as drawn on the image "
        "(a→b pointing right means crossing downwards); b_to_a: the opposite; both: either way.",
    )


class LoiteringRule(_ObjectRule):
    """A track stays inside the zone for at least ``dwell_s`` seconds without leaving it."""

    kind: Literal["loitering"] = Field(title="Kind", description="Rule kind discriminator.")
    zone: str = Field(..., title="Zone", description="ID of a zone in the same camera entry.", pattern=RULE_ID_PATTERN)
    dwell_s: float = Field(
        ..., title="Dwell time", description="Seconds a track must stay inside the zone continuously.", gt=0, le=86_400
    )


class CrowdingRule(_ObjectRule):
    """At least ``min_count`` objects are in the zone (or frame) in every frame for ``duration_s``."""

    kind: Literal["crowding"] = Field(title="Kind", description="Rule kind discriminator.")
    zone: str | None = Field(
        None, title="Zone", description="ID of a zone in the same camera entry; null = the whole frame.",
        pattern=RULE_ID_PATTERN,
    )
    min_count: int = Field(..., title="Minimum count", description="Objects needed (count ≥ N).", ge=1, le=2000)
    duration_s: float = Field(
        0.0, title="Duration", description="Seconds the count must stay at or above N before the alert.", ge=0, le=86_400
    )


def _ignored_by_default() -> list[OfflineReason]:
    return ["stopped"]


class CameraOfflineRule(_RuleBase):
    """The camera went offline and did not come back within ``grace_s`` seconds."""

    kind: Literal["camera_offline"] = Field(title="Kind", description="Rule kind discriminator.")
    grace_s: float = Field(
        60.0, title="Grace period", description="Seconds a camera may stay offline before the alert.", ge=0, le=86_400
    )
    ignore_reasons: list[OfflineReason] = Field(
        default_factory=_ignored_by_default,
        title="Ignored reasons",
        description="Offline reasons that raise no alert ('stopped' = disabled or shut down on purpose; "
        "add 'eof' for file sources).",
        max_length=9,
    )


Rule = Annotated[
    ZoneIntrusionRule | LineCrossingRule | LoiteringRule | CrowdingRule | CameraOfflineRule,
    Field(discriminator="kind"),
]


class CameraRules(Section):
    """Zones, lines and rules of one camera (or of every camera, with ``camera_id: "*"``)."""

    camera_id: str = Field(
        ..., title="Camera ID", description="The camera these rules watch; '*' = every camera.",
        pattern=CAMERA_ID_OR_ALL_PATTERN,
    )
    zones: list[ZoneSpec] = Field(default_factory=list, title="Zones", description="Named polygons.", max_length=256)
    lines: list[LineSpec] = Field(default_factory=list, title="Lines", description="Named lines.", max_length=256)
    rules: list[Rule] = Field(default_factory=list, title="Rules", description="Rules evaluated on this camera.",
                              max_length=1024)

    @model_validator(mode="after")
    def _ids_unique_and_references_exist(self) -> CameraRules:
        check_unique_ids((z.id for z in self.zones), f"zone (camera {self.camera_id})")
        check_unique_ids((ln.id for ln in self.lines), f"line (camera {self.camera_id})")
        zone_ids = [z.id for z in self.zones]
        for rule in self.rules:
            if isinstance(rule, ZoneIntrusionRule | LoiteringRule) or (isinstance(rule, CrowdingRule) and rule.zone):
                check_reference(rule.zone or "", zone_ids, "zone", rule.id)
            elif isinstance(rule, LineCrossingRule):
                check_reference(rule.line, [ln.id for ln in self.lines], "line", rule.id)
        return self

    def zone(self, zone_id: str) -> ZoneSpec:
        return next(z for z in self.zones if z.id == zone_id)

    def line(self, line_id: str) -> LineSpec:
        return next(ln for ln in self.lines if ln.id == line_id)


class RulesConfig(Section):
    """The rules worker: which rules watch which camera, and how long it remembers tracks."""

    cameras: list[CameraRules] = Field(
        default_factory=list,
        title="Cameras",
        description="One entry per camera (camera_id '*' applies to every camera).",
        max_length=100_000,
    )
    track_timeout_s: float = Field(
        10.0,
        title="Track timeout",
        description="A track not seen for this many seconds (event time) is forgotten; if it reappears it "
        "counts as new (its dwell time restarts).",
        gt=0,
        le=3600,
    )
    document_poll_s: float = Field(
        5.0,
        title="Rules document poll",
        description="Seconds between checks of the rules document in the object store (config/rules.json, edited "
        "in the admin UI); once saved, it replaces these rules in the running worker without a restart.",
        ge=0.2,
        le=3600,
    )
    max_tracks_per_camera: int = Field(
        5000,
        title="Tracks per camera",
        description="Live tracks remembered per camera; beyond this the least recently seen are forgotten.",
        ge=10,
        le=1_000_000,
    )
    commit_interval_s: float = Field(
        1.0,
        title="Commit interval",
        description="Seconds between saving the touched cameras' engine state and committing the input "
        "offsets (alerts are flushed after every batch); bounds what a restart replays.",
        gt=0,
        le=600,
    )
    state_prefix: str = Field(
        "state/rules",
        title="State prefix",
        description="Object-store prefix of the per-camera engine state a restarted worker continues from.",
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        max_length=200,
    )

    @model_validator(mode="after")
    def _ids_unique(self) -> RulesConfig:
        check_unique_ids((c.camera_id for c in self.cameras), "camera entry")
        check_unique_ids((r.id for c in self.cameras for r in c.rules), "rule")
        return self

    def entries_for(self, camera_id: str) -> list[CameraRules]:
        """The camera's own entry (if any) and the '*' entry (if any), in that order."""
        return [c for c in self.cameras if c.camera_id in (camera_id, ALL_CAMERAS)]
