"""Turning query-layer hits into API bodies: signed crop links, camera names, scope labels.

A crop link names the camera the crop belongs to and the permission needed to see it (face crops: face
search; alert evidence: alerts; everything else: view), so ``/api/media/{token}`` can check both again
when the link is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pipeline.search.hits import AlertHit, CameraState, FaceHit, PlateHit, Sighting, TrackHit
from schemas.alerts import Alert
from workers.api.auth import Action
from workers.api.models import (
    AlertOut,
    CameraOut,
    FaceHitOut,
    PlateHitOut,
    SightingOut,
    VehicleHitOut,
    from_hit,
)
from workers.api.users import Permission


def media_url(act: Action, key: str | None, camera_id: str, permission: Permission = Permission.VIEW) -> str | None:
    if not key:
        return None
    return "/api/media/" + act.ctx.media.sign(act.who.user.name, key, camera_id, permission.value)


def camera_names(act: Action) -> dict[str, str]:
    return {cid: cam.name or cid for cid, cam in act.ctx.directory.cameras().items()}


def scope_label(cameras: list[str] | None) -> str:
    return "all cameras" if cameras is None else f"{len(cameras)} camera{'s' if len(cameras) != 1 else ''}"


def check_times(act: Action, start: datetime | None, end: datetime | None) -> None:
    """Refuse naive or inverted time windows (audited as invalid)."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            msg = f"{name} needs a time zone, e.g. 2024-05-01T08:00:00Z or 2024-05-01T16:00:00+08:00"
            raise act.refuse(422, msg, outcome="invalid")
    if start is not None and end is not None and end <= start:
        raise act.refuse(422, "end must be after start", outcome="invalid")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def plate_out(act: Action, hit: PlateHit, names: dict[str, str]) -> PlateHitOut:
    return from_hit(PlateHitOut, hit, id=hit.read_id, crop_url=media_url(act, hit.crop_key, hit.camera_id),
                    camera_name=names.get(hit.camera_id, hit.camera_id))


def vehicle_out(act: Action, hit: TrackHit, names: dict[str, str]) -> VehicleHitOut:
    return from_hit(VehicleHitOut, hit, id=f"{hit.track_id}/{hit.segment}",
                    crop_url=media_url(act, hit.crop_key, hit.camera_id),
                    camera_name=names.get(hit.camera_id, hit.camera_id))


def face_out(act: Action, hit: FaceHit, names: dict[str, str], threshold: float) -> FaceHitOut:
    return from_hit(FaceHitOut, hit, id=hit.face_id,
                    crop_url=media_url(act, hit.crop_key, hit.camera_id, Permission.SEARCH_FACES),
                    camera_name=names.get(hit.camera_id, hit.camera_id), match=hit.score >= threshold)


def sighting_out(act: Action, s: Sighting) -> SightingOut:
    cam = act.ctx.directory.cameras().get(s.camera_id)
    needs = Permission.SEARCH_FACES if s.kind == "face" else Permission.VIEW
    extra: dict[str, Any] = {"crop_url": media_url(act, s.crop_key, s.camera_id, needs)}
    if cam is not None:  # the registry is the reference for names and positions
        extra.update(camera_name=s.camera_name or cam.name or s.camera_id,
                     lat=s.lat if s.lat is not None else cam.latitude,
                     lon=s.lon if s.lon is not None else cam.longitude)
    return from_hit(SightingOut, s, **extra)


def alert_out(act: Action, hit: AlertHit) -> AlertOut:
    keys = list(hit.evidence_keys)
    if not keys and act.ctx.snapshots is not None:  # a rule alert: the snapshot the API took when it arrived
        stored = act.ctx.snapshots.stored(hit.camera_id, hit.alert_id)
        keys = [stored] if stored else []
    urls = [u for u in (media_url(act, k, hit.camera_id, Permission.ALERTS) for k in keys) if u]
    return from_hit(AlertOut, hit, evidence_urls=urls)


def alert_json(act: Action, alert: Alert) -> str:
    """An :class:`schemas.alerts.Alert` (wire message) as the stream's JSON."""
    out = AlertOut(
        alert_id=alert.alert_id, alert_type=alert.alert_type, camera_id=alert.camera_id,
        occurred_at=alert.occurred_at, severity=alert.severity, rule_id=alert.rule_id, track_id=alert.track_id,
        message=alert.message, evidence_keys=tuple(alert.evidence_keys), details=dict(alert.details),
        evidence_urls=[u for u in (media_url(act, k, alert.camera_id, Permission.ALERTS) for k in alert.evidence_keys)
                       if u],
    )
    return out.model_dump_json()


def camera_out(state: CameraState) -> CameraOut:
    return from_hit(CameraOut, state)


def ids(hits: Iterable[Any], attr: str) -> list[str]:
    return [str(getattr(h, attr)) for h in hits]
