"""Sighting detail, crops and clip exports.

* ``GET /api/sighting`` — one sighting (scoped) with a signed crop link; face sightings need face-search
  rights and a case reference. Audited as a view.
* ``GET /api/media/{token}`` — a crop or thumbnail behind a signed link issued by a scoped, audited
  response to this same user; the user must still hold the link's permission and the camera must still be
  in their scope (checked on every fetch). Audited (``media.get``, the object key). Served by the API (the
  local store's ``file://`` URLs mean nothing to a browser) or, with ``api.presign_media`` on S3, redirected
  to a short-lived presigned URL.
* ``POST /api/exports`` — cut the MP4 around a sighting (needs a case reference; at most
  ``api.exports_max_per_hour`` per user). Audited as an export with the clip's key and SHA-256.
  ``GET /api/exports/{id}/clip.mp4`` serves it (with range requests) to the user who made it, or an admin,
  while the camera is still in their scope and its case is open with them as a member; each download from the first byte is audited
  (``export.download``), the player's follow-up range requests are not; refusals always are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from pipeline.cases.records import CaseRefused
from pipeline.search.hits import Sighting
from pipeline.store.base import ObjectNotFound
from workers.api.auth import Action, Principal, begin, principal
from workers.api.context import ApiContext
from workers.api.contract import errors
from workers.api.ids import SIGHTING_ID, ExportPath, MediaTokenPath
from workers.api.models import ExportOut, ExportRequest, Kind, SightingDetail
from workers.api.present import camera_out, check_times, iso, sighting_out
from workers.api.users import Permission, Role

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["sightings and exports"])
Who = Annotated[Principal, Depends(principal)]


def _need_view(act: Action, kind: Kind, case: str | None) -> None:
    if kind == "face":
        act.need(Permission.SEARCH_FACES, "view face sightings")
        act.need_case(case, "viewing a face sighting")
    else:
        act.need(Permission.VIEW, "view sightings")
        act.case = case or None


def _find(act: Action, kind: Kind, sighting_id: str) -> Sighting:
    sighting = act.ctx.search.sighting(kind, sighting_id, cameras=act.cameras())
    if sighting is None:
        raise act.refuse(404, f"no {kind} sighting {sighting_id!r} in your camera scope")
    return sighting


@router.get("/sighting", response_model=SightingDetail, name="sighting.view",
            summary="One sighting with its crop link and whether a clip can be cut", responses=errors(400, 404))
def sighting_detail(
    request: Request,
    who: Who,
    kind: Kind,
    sighting_id: Annotated[str, Query(alias="id", pattern=SIGHTING_ID)],
    case: Annotated[str | None, Query(max_length=100)] = None,
) -> SightingDetail:
    with begin(request, who, "sighting.view", {"kind": kind, "id": sighting_id}) as act:
        _need_view(act, kind, case)
        sighting = _find(act, kind, sighting_id)
        available = act.ctx.clips.has_recording(sighting.camera_id, sighting.clip_start, sighting.clip_end)
        states = act.ctx.search.camera_status(cameras=[sighting.camera_id])
        body = SightingDetail(sighting=sighting_out(act, sighting), clip_available=available,
                              camera=camera_out(states[0]) if states else None)
        return act.done(body, count=1, ids=[sighting.id])


VIDEO: dict[str, Any] = {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
         "description": "The MP4 (the whole file, or with a Range header 206 and the part)."}
BYTE_RANGES: dict[int | str, dict[str, Any]] = {206: {"description": "The requested byte range.",
                     "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
               307: {"description": "Redirect to a short-lived presigned URL (api.presign_media on S3)."}}


@router.get("/media/{token}", name="media.get", summary="A crop behind a signed link (audited per fetch)",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The image."},
                       307: BYTE_RANGES[307], **errors(404)})
def media(request: Request, who: Who, token: MediaTokenPath) -> Response:
    with begin(request, who, "media.get") as act:
        ctx = act.ctx
        grant = ctx.media.verify(token, who.user.name)
        if grant is None:
            raise act.refuse(403, "invalid or expired media link")
        act.params.update(key=grant.key, camera_id=grant.camera_id)
        try:
            needed = Permission(grant.permission)
        except ValueError:
            raise act.refuse(403, "invalid media link") from None
        act.need(needed, "see this image")
        allowed = act.cameras()
        if allowed is not None and grant.camera_id not in allowed:
            raise act.refuse(404, "the camera of this image is no longer in your scope")
        if ctx.api.presign_media and ctx.store.name == "s3":
            act.done(None, count=1, ids=[grant.key], exported=[grant.key])
            return RedirectResponse(ctx.store.presigned_get(grant.key, 300), status_code=307)
        try:
            data = ctx.store.get(grant.key)
            info = ctx.store.stat(grant.key)
        except ObjectNotFound:
            raise act.refuse(404, "the object is gone (retention or deleted)") from None
        act.done(None, count=1, ids=[grant.key], exported=[grant.key])
    media_type = info.content_type if info.content_type.startswith("image/") else "image/jpeg"
    return Response(data, media_type=media_type,
                    headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})


@router.post("/exports", response_model=ExportOut, name="export.clip",
             summary="Cut the MP4 clip around a sighting from the recordings (needs a case reference)",
             responses=errors(400, 404, 429))
def export_clip(request: Request, who: Who, body: ExportRequest) -> ExportOut:
    params = {"kind": body.kind, "id": body.id, "start": iso(body.start), "end": iso(body.end)}
    with begin(request, who, "export.clip", params) as act:
        act.need(Permission.EXPORT, "export clips")
        if body.kind == "face":
            act.need(Permission.SEARCH_FACES, "export face sightings")
        case = act.need_case(body.case, "a clip export")
        check_times(act, body.start, body.end)
        sighting = _find(act, body.kind, body.id)
        start = body.start or sighting.clip_start
        end = body.end or sighting.clip_end
        if end <= start:
            raise act.refuse(422, "end must be after start", outcome="invalid")
        if (end - start) > timedelta(seconds=act.ctx.api.clip_max_s):
            raise act.refuse(422, f"a clip may cover at most {act.ctx.api.clip_max_s:.0f} s", outcome="invalid")
        need_export_quota(act)
        try:
            rec = act.ctx.clips.export(user=who.user.name, case=case, camera_id=sighting.camera_id,
                                       sighting=f"{body.kind}:{body.id}", start=start, end=end)
        except LookupError as exc:
            raise act.refuse(404, str(exc)) from None
        act.ctx.quotas.export_made(who.user.name)
        act.params.update(export_id=rec.export_id, sha256=rec.sha256, camera_id=rec.camera_id)
        out = ExportOut(export_id=rec.export_id, url=f"/api/exports/{rec.export_id}/clip.mp4", key=rec.key,
                        sha256=rec.sha256, bytes=rec.bytes, camera_id=rec.camera_id, case=rec.case, start=rec.start,
                        end=rec.end, duration_s=rec.duration_s, transcoded=rec.transcoded,
                        source_codec=rec.source_codec)
        return act.done(out, count=1, ids=[sighting.id], exported=[rec.key])


def need_export_quota(act: Action) -> None:
    """429 with Retry-After when the caller used up ``api.exports_max_per_hour``."""
    refusal = act.ctx.quotas.export_refusal(act.who.user.name)
    if refusal is not None:
        raise act.refuse(429, refusal.reason, retry_after_s=refusal.retry_after_s)


def from_first_byte(request: Request) -> bool:
    """True for a download or playback from the start (no Range header, or one starting at byte 0)."""
    return request.headers.get("range", "bytes=0-").replace(" ", "").startswith("bytes=0-")


@router.get("/exports/{export_id}/clip.mp4", name="export.download", response_class=FileResponse,
            summary="Download (or play) an export made by this user",
            responses={200: VIDEO, **BYTE_RANGES, **errors(404, 416)})
def export_file(request: Request, who: Who, export_id: ExportPath) -> Response:
    with begin(request, who, "export.download", {"export_id": export_id}) as act:
        ctx = act.ctx
        rec = ctx.clips.record(export_id)
        missing = "no such export"
        if rec is None:
            raise act.refuse(404, missing)
        act.case = rec.case
        act.params.update(camera_id=rec.camera_id, sha256=rec.sha256)
        allowed = act.cameras()
        in_scope = allowed is None or rec.camera_id in allowed
        if not who.user.can(Permission.EXPORT) or not in_scope or (rec.user != who.user.name
                                                                   and who.user.role is not Role.ADMIN):
            raise act.refuse(404, missing)
        try:  # a closed case (or a member removed from it) ends access to its exports too
            ctx.cases.require(rec.case, who.user.name)
        except CaseRefused as exc:
            raise act.refuse(403, str(exc)) from None
        response = serve_video(ctx, rec.key, lambda: ctx.clips.local_file(rec), f"{rec.case}-{rec.export_id}.mp4",
                               3600)
        if from_first_byte(request):
            act.done(None, count=1, ids=[export_id], exported=[rec.key])
        return response


def serve_video(ctx: ApiContext, key: str, local_file: Callable[[], Path], filename: str, max_age_s: int) -> Response:
    """An MP4 of the store: a redirect to a short-lived presigned URL (``api.presign_media`` on S3), else the
    cached local copy with range requests."""
    if ctx.api.presign_media and ctx.store.name == "s3":
        return RedirectResponse(ctx.store.presigned_get(key, 300), status_code=307)
    return FileResponse(local_file(), media_type="video/mp4", filename=filename, content_disposition_type="inline",
                        headers={"Cache-Control": f"private, max-age={max_age_s}"})
