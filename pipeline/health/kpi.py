"""Camera-network KPIs of one day: coverage, online rate against the target, health rate, archive completeness,
geo-tag rate, recording completeness and case-video intake, for all cameras in scope and per unit.

Definitions (``docs/quality.md`` has them with examples):

- **online rate**: online time ÷ the day's time (up to now for today), over all cameras (time-weighted);
  unknown time (no status event yet) is not online. Target: ``quality.online_target`` (95 %).
- **health rate**: share of cameras that are *healthy* that day: online at least the target share of the
  day, and with a fault-free picture for at least the target share of their online time.
- **archive completeness** (one camera, one file): share of cameras whose registry record has every required
  field (:data:`REQUIRED_FIELDS`); **geo-tag rate**: share with latitude and longitude.
- **recording completeness**: recorded time ÷ online time over the cameras that record.
- **case-video intake**: videos saved into cases; ``None`` until cases exist in this deployment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.config.ingest import CameraSpec
from pipeline.health.history import Completeness, Episode, HealthHistory, Interval, day_window

REQUIRED_FIELDS = ("name", "point_class", "latitude", "longitude", "admin_unit")
"""Registry fields every camera's record must fill ("one camera, one file")."""
NO_UNIT = "(no unit)"
CASE_INTAKE_NOTE = "n/a until cases exist"


def missing_fields(cam: CameraSpec) -> list[str]:
    return [f for f in REQUIRED_FIELDS if getattr(cam, f) in (None, "")]


def _union_seconds(spans: Iterable[tuple[datetime, datetime]]) -> float:
    total, cursor = 0.0, None
    for a, b in sorted(spans):
        if cursor is not None and a < cursor:
            a = cursor
        if b > a:
            total += (b - a).total_seconds()
            cursor = b
    return total


@dataclass
class CameraDay:
    """One camera's day: what the KPIs, the drill-down and the daily report show."""

    camera: CameraSpec
    intervals: list[Interval]
    episodes: list[Episode]
    completeness: Completeness | None
    online_rate: float | None
    fault_s: float
    healthy: bool

    @property
    def unit(self) -> str:
        return self.camera.admin_unit or NO_UNIT

    @property
    def offline_s(self) -> float:
        return sum(s.seconds for s in self.intervals if s.state != "online")

    def as_json(self) -> dict[str, object]:
        c = self.camera
        comp = self.completeness
        return {
            "camera_id": c.id, "name": c.name, "unit": self.unit, "point_class": c.point_class,
            "online_rate": self.online_rate, "offline_s": round(self.offline_s, 1), "fault_s": round(self.fault_s, 1),
            "healthy": self.healthy, "missing_fields": missing_fields(c),
            "geotagged": c.latitude is not None and c.longitude is not None,
            "recording_completeness": comp.ratio if comp else None,
            "recording_gaps": [{"start": g.start.isoformat(), "end": g.end.isoformat(), "seconds": round(g.seconds, 1)}
                               for g in (comp.gaps if comp else [])],
            "offline": [{"start": s.start.isoformat(), "end": s.end.isoformat(), "state": s.state, "reason": s.reason}
                        for s in self.intervals if s.state != "online"],
            "faults": [{"fault": e.fault, "start": e.start.isoformat(), "end": e.end.isoformat() if e.end else None,
                        "score": round(e.score, 3), "thumbnail_key": e.thumbnail_key} for e in self.episodes],
        }


def camera_days(history: HealthHistory, cameras: list[CameraSpec], day: str, *, now: datetime,
                target: float = 0.95, gap_min_s: float = 30.0, records: bool = True) -> list[CameraDay]:
    """Every camera's day (``records``: the ingest default for cameras that do not say whether they record)."""
    start, end = day_window(day, now)
    ids = [c.id for c in cameras]
    spans = history.intervals(ids, start, end) if ids else {}
    episodes: dict[str, list[Episode]] = {}
    for ep in history.episodes(ids, start, end) if ids else []:
        episodes.setdefault(ep.camera_id, []).append(ep)
    out = []
    for cam in cameras:
        intervals = spans.get(cam.id, [])
        rate = history.online_rate(intervals)
        online = [(s.start, s.end) for s in intervals if s.state == "online"]
        faults = [(max(ep.start, start), min(ep.end or end, end)) for ep in episodes.get(cam.id, [])
                  if ep.fault != "scene_change"]
        fault_online = _union_seconds((max(a, oa), min(b, ob)) for a, b in faults for oa, ob in online)
        online_s = sum((b - a).total_seconds() for a, b in online)
        records_here = cam.record if cam.record is not None else records
        comp = history.completeness(cam.id, day, intervals, gap_min_s, now) if records_here else None
        healthy = rate is not None and rate >= target and fault_online <= (1 - target) * online_s
        out.append(CameraDay(cam, intervals, episodes.get(cam.id, []), comp, rate, fault_online, healthy))
    return out


def _share(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass
class Kpis:
    cameras: int
    enabled: int
    by_class: dict[str, int]
    online_rate: float | None
    online_target: float
    cameras_meeting_target: int
    health_rate: float | None
    archive_completeness: float | None
    geotag_rate: float | None
    recording_completeness: float | None
    case_video_intake: int | None = None
    case_video_note: str = CASE_INTAKE_NOTE
    units: dict[str, Kpis] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if k != "units"}
        out["units"] = {u: k.as_json() for u, k in sorted(self.units.items())}
        return out


def compute(days: list[CameraDay], target: float, *, per_unit: bool = True) -> Kpis:
    total = sum(sum(s.seconds for s in d.intervals) for d in days)
    online = sum(sum(s.seconds for s in d.intervals if s.state == "online") for d in days)
    comps = [d.completeness for d in days if d.completeness is not None and d.completeness.expected_s > 0]
    classes = Counter(d.camera.point_class or "unclassified" for d in days)
    k = Kpis(
        cameras=len(days),
        enabled=sum(1 for d in days if d.camera.enabled),
        by_class=dict(sorted(classes.items())),
        online_rate=_share(online, total),
        online_target=target,
        cameras_meeting_target=sum(1 for d in days if d.online_rate is not None and d.online_rate >= target),
        health_rate=_share(sum(1 for d in days if d.healthy), len(days)),
        archive_completeness=_share(sum(1 for d in days if not missing_fields(d.camera)), len(days)),
        geotag_rate=_share(sum(1 for d in days if d.camera.latitude is not None and d.camera.longitude is not None),
                           len(days)),
        recording_completeness=_share(sum(c.recorded_s for c in comps), sum(c.expected_s for c in comps)),
    )
    if per_unit:
        units: dict[str, list[CameraDay]] = {}
        for d in days:
            units.setdefault(d.unit, []).append(d)
        k.units = {u: compute(rows, target, per_unit=False) for u, rows in units.items()}
    return k
