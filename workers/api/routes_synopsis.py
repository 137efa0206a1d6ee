"""Video synopses: request one, follow it, watch it, click an object back to its original clip.

* ``POST /api/synopses`` — queue a synopsis of a camera in the caller's scope (audited ``synopsis.request``);
  asking again for the same camera, window, filters and length returns the same synopsis. A user may have
  ``api.synopsis_max_pending`` builds queued or running and start ``api.synopsis_max_per_hour`` per hour
  (429 with ``Retry-After`` beyond); asking for one that exists costs nothing.
* ``GET /api/synopses`` — the synopses of the caller's cameras, newest first (``synopsis.list``).
* ``GET /api/synopses/coverage?camera=`` — what a camera has recorded in the last days, to choose a window
  (``synopsis.coverage``).
* ``GET /api/synopses/{camera}/{id}`` — status, and once built the size, rate, metrics and every object with
  its track and original time range (``synopsis.view``).
* ``GET /api/synopses/{camera}/{id}/video.mp4`` — the H.264 MP4 (range requests); each playback from the
  start is audited (``synopsis.video``), the browser's follow-up range requests are not.
* ``GET /api/synopses/{camera}/{id}/at?t=&x=&y=`` — the object drawn at synopsis time ``t`` (s) and pixel
  ``(x, y)``, with the exact original time of that frame, from the stored index (``synopsis.locate``).
* ``GET /api/synopses/{camera}/{id}/objects/{n}?t=`` — object ``n`` of the index at synopsis time ``t``
  (for the UI's object list; ``synopsis.object``).
* ``POST /api/synopses/{camera}/{id}/clip`` — the same click (or ``number`` instead of ``x, y``), and the original clip of that object cut
  from the recordings as an export (needs export rights and a case reference; ``synopsis.clip``). The
  answer says at which second of the clip the clicked moment is.

The camera scope is checked on every call; a synopsis of a camera outside it does not exist for the caller.
Requests need the ``synopsis`` permission (admins, investigators, operators); a plate filter also needs
plate search.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError

from pipeline.recordings import segments_between
from pipeline.store.base import ObjectNotFound
from pipeline.synopsis.index import ObjectHit, SynopsisIndex, SynopsisObject, object_at, object_hit
from pipeline.synopsis.request import SynopsisRequest, SynopsisStatus
from workers.api.auth import Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.ids import CAMERA_ID, CameraPath, CameraQuery, Instant, SynopsisPath
from workers.api.models import (
    ExportOut,
    RecordedSpan,
    RecordingCoverage,
    SynopsisClipOut,
    SynopsisClipRequest,
    SynopsisDetail,
    SynopsisHitOut,
    SynopsisList,
    SynopsisObjectOut,
    SynopsisOut,
    SynopsisRequestIn,
)
from workers.api.present import check_times, iso, scope_label
from workers.api.routes_media import BYTE_RANGES, VIDEO, from_first_byte, need_export_quota, serve_video
from workers.api.synopses import valid_id
from workers.api.users import Permission

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/synopses", tags=["synopses"])
Who = Annotated[Principal, Depends(principal)]
CLIP_PAD_S = 2.0


def _in_scope(act: Action, camera_id: str) -> bool:
    allowed = act.cameras()
    return allowed is None or camera_id in allowed


def _status_out(act: Action, status: SynopsisStatus) -> SynopsisOut:
    r = status.request
    base = f"/api/synopses/{status.camera_id}/{status.synopsis_id}"
    cam = act.ctx.directory.cameras().get(status.camera_id)
    return SynopsisOut(
        synopsis_id=status.synopsis_id, camera_id=status.camera_id,
        camera_name=(cam.name if cam is not None and cam.name else status.camera_id), state=status.state,
        updated_at=status.updated_at, error=status.error, phase=status.phase, progress=status.progress,
        start=r.start, end=r.end, classes=list(r.classes),
        colours=list(r.colours), plate=r.plate, zone=[tuple(p) for p in r.zone] if r.zone else None,  # type: ignore[misc]
        length_s=r.length_s, requested_by=r.requested_by, url=base,
        video_url=f"{base}/video.mp4" if status.state == "done" else None,
    )


def _object_out(number: int, obj: SynopsisObject) -> SynopsisObjectOut:
    return SynopsisObjectOut(
        number=number, track_id=obj.track_id, sighting_id=f"{obj.track_id}/{obj.segments[0]}",
        class_name=obj.class_name, colour=obj.colour, plate=obj.plate, original_start=obj.original_start,
        original_end=obj.original_end, clipped=obj.clipped, speed=obj.speed,
        synopsis_start_s=obj.synopsis_start_s, synopsis_end_s=obj.synopsis_end_s,
    )


def _need_status(act: Action, camera_id: str, synopsis_id: str) -> SynopsisStatus:
    act.need(Permission.SYNOPSIS, "watch synopses")
    missing = f"no synopsis {synopsis_id!r} of camera {camera_id!r} in your camera scope"
    if not valid_id(synopsis_id) or not _in_scope(act, camera_id):
        raise act.refuse(404, missing)
    status = act.ctx.synopses.status(camera_id, synopsis_id)
    if status is None:
        raise act.refuse(404, missing)
    return status


def _need_index(act: Action, camera_id: str, synopsis_id: str) -> SynopsisIndex:
    status = _need_status(act, camera_id, synopsis_id)
    if status.state != "done":
        raise act.refuse(409, f"synopsis {synopsis_id} is {status.state}{': ' + status.error if status.error else ''}")
    index = act.ctx.synopses.index(camera_id, synopsis_id)
    if index is None:
        raise act.refuse(410, f"synopsis {synopsis_id} was built but its index is gone (retention?); request it again")
    return index


def _clip_range(act: Action, hit: ObjectHit) -> tuple[datetime, datetime]:
    """The object's whole original span padded by 2 s, or ``api.clip_max_s`` around the clicked moment."""
    obj = hit.object
    start = obj.original_start - timedelta(seconds=CLIP_PAD_S)
    end = obj.original_end + timedelta(seconds=CLIP_PAD_S)
    longest = timedelta(seconds=act.ctx.api.clip_max_s)
    if end - start > longest:
        start = max(start, hit.original_time - longest / 2)
        end = min(start + longest, end)
        start = end - longest
    return start, end


def _hit_out(act: Action, hit: ObjectHit) -> SynopsisHitOut:
    start, end = _clip_range(act, hit)
    return SynopsisHitOut(object=_object_out(hit.number, hit.object), frame=hit.frame, box=hit.box,
                          original_time=hit.original_time, clip_start=start, clip_end=end)


def _locate(act: Action, index: SynopsisIndex, t: float, x: float, y: float) -> ObjectHit:
    if t > index.duration_s:
        raise act.refuse(422, f"t={t:.3f} is after the end of the synopsis ({index.duration_s:.3f} s)",
                         outcome="invalid")
    if x > index.width or y > index.height:
        raise act.refuse(422, f"({x:.0f}, {y:.0f}) is outside the synopsis ({index.width}x{index.height})",
                         outcome="invalid")
    hit = object_at(index, t, x, y)
    if hit is None:
        raise act.refuse(404, f"no object at ({x:.0f}, {y:.0f}) at {t:.2f} s")
    return hit


def _object_hit(act: Action, index: SynopsisIndex, number: int, t: float | None) -> ObjectHit:
    try:
        return object_hit(index, number, t)
    except IndexError as exc:
        raise act.refuse(404, str(exc)) from None


def _queue(act: Action, wanted: SynopsisRequest) -> SynopsisStatus:
    """Queue a new build within the caller's quota (429 with Retry-After beyond it)."""
    desk, user = act.ctx.synopses, act.who.user.name
    refusal = act.ctx.quotas.synopsis_refusal(user, desk.pending)
    if refusal is not None:
        raise act.refuse(429, refusal.reason, retry_after_s=refusal.retry_after_s)
    status = desk.submit(wanted)
    act.ctx.quotas.synopsis_queued(user, status.camera_id, status.synopsis_id)
    return status


@router.post("", response_model=SynopsisOut, name="synopsis.request",
             summary="Request a synopsis of a camera's period (queued; the same request returns the same synopsis)",
             responses=errors(400, 404, 429))
def request_synopsis(request: Request, who: Who, body: SynopsisRequestIn) -> SynopsisOut:
    params = {"camera_id": body.camera_id, "start": iso(body.start), "end": iso(body.end), "classes": body.classes,
              "colours": body.colours, "plate": body.plate, "zone": body.zone, "length_s": body.length_s}
    with begin(request, who, "synopsis.request", params) as act:
        act.need(Permission.SYNOPSIS, "request synopses")
        if body.plate:
            act.need(Permission.SEARCH, "filter a synopsis by plate")
        if body.case:
            act.need_case(body.case, "a synopsis")
        check_times(act, body.start, body.end)
        window = (body.end - body.start).total_seconds()
        if window > act.ctx.api.synopsis_max_window_s:
            raise act.refuse(422, f"a synopsis may cover at most {act.ctx.api.synopsis_max_window_s:.0f} s "
                             f"(asked for {window:.0f} s)", outcome="invalid")
        if body.start > datetime.now(UTC):
            raise act.refuse(422, "the window starts in the future", outcome="invalid")
        if not _in_scope(act, body.camera_id):
            raise act.refuse(404, f"no camera {body.camera_id!r} in your camera scope")
        if not act.ctx.clips.has_recording(body.camera_id, body.start, body.end):
            raise act.refuse(404, f"no recording of camera {body.camera_id!r} between {iso(body.start)} and "
                             f"{iso(body.end)}: nothing to condense")
        try:
            wanted = SynopsisRequest(
                camera_id=body.camera_id, start=body.start.astimezone(UTC), end=body.end.astimezone(UTC),
                classes=tuple(body.classes), colours=tuple(body.colours), plate=body.plate or None,  # type: ignore[arg-type]
                zone=tuple(body.zone) if body.zone else None, length_s=body.length_s, requested_by=who.user.name,
            )
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())
            raise act.refuse(422, f"invalid synopsis request: {reason}", outcome="invalid") from None
        status = act.ctx.synopses.existing(wanted) or _queue(act, wanted)
        act.params["synopsis_id"] = status.synopsis_id
        return act.done(_status_out(act, status), count=1, ids=[status.synopsis_id])


@router.get("", response_model=SynopsisList, name="synopsis.list", summary="Synopses of the cameras in your scope",
            responses=errors())
def list_synopses(
    request: Request,
    who: Who,
    camera: Annotated[str | None, Query(pattern=CAMERA_ID, description="Only this camera.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SynopsisList:
    with begin(request, who, "synopsis.list", {"camera": camera, "limit": limit}) as act:
        act.need(Permission.SYNOPSIS, "list synopses")
        cameras = act.cameras([camera] if camera else None)
        found = [] if cameras == [] else act.ctx.synopses.list(cameras, limit)
        out = [_status_out(act, s) for s in found]
        return act.done(SynopsisList(count=len(out), scope=scope_label(cameras), synopses=out), count=len(out),
                        ids=[s.synopsis_id for s in found])


@router.get("/coverage", response_model=RecordingCoverage, name="synopsis.coverage",
            summary="Recorded time of a camera over the last days (to pick a synopsis window)",
            responses=errors(404))
def coverage(
    request: Request,
    who: Who,
    camera: CameraQuery,
    days: Annotated[int, Query(ge=1, le=31, description="Without start/end: the last N days.")] = 2,
    start: Instant | None = None,
    end: Instant | None = None,
) -> RecordingCoverage:
    params = {"camera": camera, "days": days, "start": iso(start), "end": iso(end)}
    with begin(request, who, "synopsis.coverage", params) as act:
        act.need(Permission.SYNOPSIS, "request synopses")
        check_times(act, start, end)
        if not _in_scope(act, camera):
            raise act.refuse(404, f"no camera {camera!r} in your camera scope")
        now = datetime.now(UTC)
        # a file read faster than real time is stamped ahead of the clock: look a day ahead too
        until = end or now + timedelta(days=1)
        since = start or min(now, until) - timedelta(days=days)
        if until - since > timedelta(days=32):
            raise act.refuse(422, "coverage covers at most 32 days at a time", outcome="invalid")
        entries = segments_between(act.ctx.store, camera, since, until, act.ctx.recordings_prefix)
        spans: list[RecordedSpan] = []
        for entry in entries:
            if spans and entry.start_dt <= spans[-1].end + timedelta(seconds=2):
                spans[-1].end = max(spans[-1].end, entry.end_dt)
            else:
                spans.append(RecordedSpan(start=entry.start_dt, end=entry.end_dt))
        body = RecordingCoverage(camera_id=camera, spans=spans, latest_end=spans[-1].end if spans else None)
        return act.done(body, count=len(spans))


@router.get("/{camera_id}/{synopsis_id}", response_model=SynopsisDetail | SynopsisOut, name="synopsis.view",
            summary="A synopsis: its status, and once built its size, metrics and objects", responses=errors(404, 410))
def view_synopsis(request: Request, who: Who, camera_id: CameraPath,
                  synopsis_id: SynopsisPath) -> SynopsisDetail | SynopsisOut:
    with begin(request, who, "synopsis.view", {"camera_id": camera_id, "synopsis_id": synopsis_id}) as act:
        status = _need_status(act, camera_id, synopsis_id)
        if status.state != "done":
            return act.done(_status_out(act, status), count=0, ids=[synopsis_id])
        index = act.ctx.synopses.index(camera_id, synopsis_id)
        if index is None:
            raise act.refuse(410, f"synopsis {synopsis_id} was built but its index is gone; request it again")
        objects = [_object_out(n, o) for n, o in enumerate(index.objects)]
        body = SynopsisDetail(
            synopsis=_status_out(act, status), width=index.width, height=index.height, fps=index.fps,
            frames=index.frames, duration_s=round(index.duration_s, 3), window_start=index.window_start,
            window_end=index.window_end, metrics=index.metrics.model_dump(mode="json"), objects=objects,
        )
        return act.done(body, count=len(objects), ids=[o.track_id for o in index.objects])


@router.get("/{camera_id}/{synopsis_id}/video.mp4", name="synopsis.video", response_class=FileResponse,
            summary="The synopsis video (H.264 MP4, range requests)",
            responses={200: VIDEO, **BYTE_RANGES, **errors(404, 409, 410, 416)})
def synopsis_video(request: Request, who: Who, camera_id: CameraPath, synopsis_id: SynopsisPath) -> Response:
    act = begin(request, who, "synopsis.video", {"camera_id": camera_id, "synopsis_id": synopsis_id})
    with act:
        status = _need_status(act, camera_id, synopsis_id)
        if status.state != "done":
            raise act.refuse(409, f"synopsis {synopsis_id} is {status.state}")
        ctx = act.ctx
        from_start = from_first_byte(request)
        try:
            response = serve_video(ctx, ctx.synopses.keys(camera_id, synopsis_id).video,
                                   lambda: ctx.synopses.video_file(camera_id, synopsis_id),
                                   f"synopsis-{camera_id}-{synopsis_id}.mp4", 600)
        except ObjectNotFound:
            raise act.refuse(410, f"the video of synopsis {synopsis_id} is gone (retention?); request it again") from None
        if from_start:
            act.done(None, count=1, ids=[synopsis_id])
        return response


@router.get("/{camera_id}/{synopsis_id}/at", response_model=SynopsisHitOut, name="synopsis.locate",
            summary="The object under a click on the synopsis, and the original moment it shows",
            responses=errors(404, 409, 410))
def locate(
    request: Request,
    who: Who,
    camera_id: CameraPath,
    synopsis_id: SynopsisPath,
    t: Annotated[float, Query(ge=0.0, le=86_400.0, description="Seconds into the synopsis.")],
    x: Annotated[float, Query(ge=0.0, le=100_000.0, description="Pixel column (synopsis pixels).")],
    y: Annotated[float, Query(ge=0.0, le=100_000.0, description="Pixel row (synopsis pixels).")],
) -> SynopsisHitOut:
    params = {"camera_id": camera_id, "synopsis_id": synopsis_id, "t": t, "x": x, "y": y}
    with begin(request, who, "synopsis.locate", params) as act:
        index = _need_index(act, camera_id, synopsis_id)
        hit = _locate(act, index, t, x, y)
        return act.done(_hit_out(act, hit), count=1, ids=[hit.object.track_id])


@router.get("/{camera_id}/{synopsis_id}/objects/{number}", response_model=SynopsisHitOut, name="synopsis.object",
            summary="One object of the synopsis at a synopsis time (its frame, box and original moment there)",
            responses=errors(404, 409, 410))
def synopsis_object(
    request: Request,
    who: Who,
    camera_id: CameraPath,
    synopsis_id: SynopsisPath,
    number: Annotated[int, Path(ge=0, le=1_000_000, description="The object's number in the index.")],
    t: Annotated[float | None, Query(ge=0.0, le=86_400.0, description="Seconds into the synopsis.")] = None,
) -> SynopsisHitOut:
    params = {"camera_id": camera_id, "synopsis_id": synopsis_id, "number": number, "t": t}
    with begin(request, who, "synopsis.object", params) as act:
        index = _need_index(act, camera_id, synopsis_id)
        hit = _object_hit(act, index, number, t)
        return act.done(_hit_out(act, hit), count=1, ids=[hit.object.track_id])


@router.post("/{camera_id}/{synopsis_id}/clip", response_model=SynopsisClipOut, name="synopsis.clip",
             summary="Cut the original clip of the object under a click (needs a case reference)",
             responses=errors(400, 404, 409, 410, 429))
def clip(request: Request, who: Who, camera_id: CameraPath, synopsis_id: SynopsisPath,
         body: SynopsisClipRequest) -> SynopsisClipOut:
    params = {"camera_id": camera_id, "synopsis_id": synopsis_id, "t": body.t, "x": body.x, "y": body.y,
              "number": body.number}
    with begin(request, who, "synopsis.clip", params) as act:
        act.need(Permission.EXPORT, "export clips")
        case = act.need_case(body.case, "a clip export")
        index = _need_index(act, camera_id, synopsis_id)
        if body.number is not None:
            hit = _object_hit(act, index, body.number, body.t)
        else:
            hit = _locate(act, index, body.t, body.x, body.y)
        found = _hit_out(act, hit)
        need_export_quota(act)
        try:
            rec = act.ctx.clips.export(user=who.user.name, case=case, camera_id=camera_id,
                                       sighting=f"synopsis:{synopsis_id}:{hit.object.track_id}",
                                       start=found.clip_start, end=found.clip_end)
        except LookupError as exc:
            raise act.refuse(404, str(exc)) from None
        act.ctx.quotas.export_made(who.user.name)
        act.params.update(export_id=rec.export_id, sha256=rec.sha256, track_id=hit.object.track_id,
                          original_time=iso(hit.original_time))
        export = ExportOut(export_id=rec.export_id, url=f"/api/exports/{rec.export_id}/clip.mp4", key=rec.key,
                           sha256=rec.sha256, bytes=rec.bytes, camera_id=rec.camera_id, case=rec.case,
                           start=datetime.fromisoformat(rec.start), end=datetime.fromisoformat(rec.end),
                           duration_s=rec.duration_s, transcoded=rec.transcoded, source_codec=rec.source_codec)
        offset = (hit.original_time - export.start).total_seconds()
        out = SynopsisClipOut(hit=found, export=export, offset_s=round(max(0.0, offset), 3))
        return act.done(out, count=1, ids=[hit.object.track_id], exported=[rec.key])
