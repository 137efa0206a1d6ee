"""Saving into a case: what the client names is resolved by the API (scoped, from the catalog and the stores)
into a :class:`pipeline.cases.workspace.CaseItem`, and items are shown with signed media links.

The client sends a kind and a reference; the camera, time, track, text, pictures and position come from the
catalog (``SearchService.sighting``/``alerts``), the export records or the synopsis index — never from the
request — and only for cameras in the caller's scope (404 otherwise, as for every other scoped lookup).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.cases.workspace import CaseItem, ItemKind, new_item_id
from workers.api.auth import Action
from workers.api.ids import CAMERA_ID, Instant
from workers.api.present import media_url
from workers.api.users import Permission

SaveKind = Literal["plate", "track", "face", "alert", "clip", "moment", "note"]


class ItemIn(BaseModel):
    """Something to save into a case: a hit (plate read, track, face, alert), a clip export, a synopsis moment
    or a note."""

    model_config = ConfigDict(extra="forbid")

    kind: SaveKind
    ref: str = Field("", max_length=200, pattern=r"^[A-Za-z0-9_.:/-]{0,200}$",
                     description="Sighting ID (plate/track/face), alert ID, export ID or synopsis ID (moment).")
    note: str = Field("", max_length=4000, description="The investigator's note (a note item: its text).")
    camera_id: str | None = Field(None, pattern=CAMERA_ID, description="moment: the synopsis's camera.")
    time: Instant | None = Field(None, description="alert: when it occurred; moment: the original time.")
    track_id: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_.:/-]{1,200}$",
                                 description="moment: the object's track.")


class ItemOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str
    case: str
    kind: ItemKind
    ref: str
    camera_id: str
    camera_name: str = ""
    time: datetime | None
    end: datetime | None
    track_id: str
    text: str
    note: str
    crop_url: str | None = None
    media_urls: list[str] = Field(default_factory=list, description="Signed links to the item's pictures "
                                  "(an enhanced frame: the original, then the enhanced copy).")
    media_keys: list[str]
    sha256: str
    lat: float | None
    lon: float | None
    details: dict[str, Any]
    added_by: str
    added_at: datetime
    audit_id: str
    linked_from: str | None = Field(None, description="Set when the item belongs to a linked case.")


def item_out(act: Action, item: CaseItem, names: dict[str, str], linked_from: str | None = None) -> ItemOut:
    permission = Permission.SEARCH_FACES if item.kind == "face" else Permission.VIEW
    key = item.crop_key or next((k for k in item.media_keys if k.endswith((".jpg", ".png"))), "")
    url = media_url(act, key, item.camera_id, permission) if key and item.camera_id else None
    data = item.public()
    for drop in ("crop_key", "removed_at", "removed_by", "media_keys"):
        data.pop(drop, None)
    urls = [u for k in item.media_keys if k.endswith((".jpg", ".png")) and item.camera_id
            and (u := media_url(act, k, item.camera_id, permission))]
    return ItemOut(**data, media_keys=list(item.media_keys), crop_url=url, media_urls=urls,
                   camera_name=names.get(item.camera_id, item.camera_id), linked_from=linked_from)


def _in_scope(act: Action, camera_id: str) -> bool:
    allowed = act.cameras()
    return allowed is None or camera_id in allowed


def resolve(act: Action, number: str, body: ItemIn) -> CaseItem:
    """The item ``body`` names, resolved and scoped (refusals raised through ``act``)."""
    base: dict[str, Any] = {"item_id": new_item_id(), "case": number, "kind": body.kind, "ref": body.ref,
                            "note": body.note, "added_by": act.who.user.name, "added_at": _now()}
    if body.kind == "note":
        if not body.note.strip():
            raise act.refuse(422, "a note needs its text ('note')", outcome="invalid")
        return CaseItem(**base)
    if not body.ref:
        raise act.refuse(422, f"saving a {body.kind} needs its reference ('ref')", outcome="invalid")
    if body.kind in ("plate", "track", "face"):
        return CaseItem(**base, **_sighting(act, body.kind, body.ref))
    if body.kind == "alert":
        return CaseItem(**base, **_alert(act, body))
    if body.kind == "clip":
        return CaseItem(**base, **_clip(act, number, body.ref))
    return CaseItem(**base, **_moment(act, body))


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def _sighting(act: Action, kind: Literal["plate", "track", "face"], ref: str) -> dict[str, Any]:
    if kind == "face":
        act.need(Permission.SEARCH_FACES, "save face sightings")
    sighting = act.ctx.search.sighting(kind, ref, cameras=act.cameras())
    if sighting is None:
        raise act.refuse(404, f"no {kind} sighting {ref!r} in your camera scope")
    return {"camera_id": sighting.camera_id, "time": sighting.time, "track_id": sighting.track_id,
            "text": sighting.text or "", "crop_key": sighting.crop_key or "", "lat": sighting.lat, "lon": sighting.lon,
            "details": {"clip_start": sighting.clip_start.isoformat(), "clip_end": sighting.clip_end.isoformat(),
                        "score": sighting.score, "box": list(sighting.box) if sighting.box else None,
                        "camera_name": sighting.camera_name}}


def _alert(act: Action, body: ItemIn) -> dict[str, Any]:
    start = body.time - timedelta(seconds=1) if body.time else None
    end = body.time + timedelta(seconds=1) if body.time else None
    hits = act.ctx.search.alerts(cameras=act.cameras(), start=start, end=end, limit=act.ctx.api.max_results)
    hit = next((a for a in hits if a.alert_id == body.ref), None)
    if hit is None:
        raise act.refuse(404, f"no alert {body.ref!r} in your camera scope (send its 'time' for older alerts)")
    cam = act.ctx.directory.cameras().get(hit.camera_id)
    return {"camera_id": hit.camera_id, "time": hit.occurred_at, "track_id": hit.track_id or "",
            "text": hit.message[:200], "media_keys": tuple(hit.evidence_keys),
            "crop_key": hit.evidence_keys[0] if hit.evidence_keys else "",
            "lat": cam.latitude if cam else None, "lon": cam.longitude if cam else None,
            "details": {"alert_type": hit.alert_type, "severity": hit.severity, "rule_id": hit.rule_id}}


def _clip(act: Action, number: str, export_id: str) -> dict[str, Any]:
    act.need(Permission.EXPORT, "save clips")
    rec = act.ctx.clips.record(export_id)
    if rec is None or rec.case != number or not _in_scope(act, rec.camera_id):
        raise act.refuse(404, f"no export {export_id!r} of case {number} in your camera scope")
    cam = act.ctx.directory.cameras().get(rec.camera_id)
    return {"camera_id": rec.camera_id, "time": datetime.fromisoformat(rec.start), "end": datetime.fromisoformat(rec.end),
            "text": f"clip {rec.duration_s:.1f} s", "media_keys": (rec.key,), "sha256": rec.sha256,
            "lat": cam.latitude if cam else None, "lon": cam.longitude if cam else None,
            "details": {"export_id": rec.export_id, "transcoded": rec.transcoded, "source_codec": rec.source_codec,
                        "sighting": rec.sighting, "bytes": rec.bytes, "exported_by": rec.user}}


def _moment(act: Action, body: ItemIn) -> dict[str, Any]:
    act.need(Permission.SYNOPSIS, "save synopsis moments")
    if not body.camera_id or body.time is None:
        raise act.refuse(422, "a synopsis moment needs 'camera_id' and 'time' (the original time)", outcome="invalid")
    if not _in_scope(act, body.camera_id) or act.ctx.synopses.status(body.camera_id, body.ref) is None:
        raise act.refuse(404, f"no synopsis {body.ref!r} of camera {body.camera_id} in your camera scope")
    cam = act.ctx.directory.cameras().get(body.camera_id)
    return {"camera_id": body.camera_id, "time": body.time, "track_id": body.track_id or "",
            "text": "synopsis moment", "lat": cam.latitude if cam else None, "lon": cam.longitude if cam else None,
            "details": {"synopsis_id": body.ref}}
