"""Recordings timeline: a camera's recorded spans and gaps, events on them, playback by segment, range exports.

* ``GET /api/recordings/{camera}/timeline?start=&end=`` — recorded spans, the gaps between them, each segment
  (start, end, codec, playback URL) and event markers (alerts, tracks, plate reads) in the window (≤ 48 h).
* ``GET /api/recordings/{camera}/segments/{stamp}.mp4`` — one recorded segment as an MP4 a browser plays:
  remuxed from the original stream (H.264), or transcoded once (other codecs; ``X-Transcoded: true``), cut on
  the fly and cached. Watching is a **view** (``recordings`` permission: operators too), audited per segment as
  ``recordings.play`` — not an export: nothing is stored as evidence and no case reference is needed.
* ``POST /api/recordings/{camera}/export`` ``{start, end, case}`` — a case-bound export of exactly that range
  (the clip export of :mod:`workers.api.clips`; ``export`` permission and a case reference).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from pipeline.recordings import SegmentEntry, segments_between, stamp
from workers.api import cache
from workers.api.auth import Action, Principal, begin, principal
from workers.api.clips import make_clip
from workers.api.context import ApiContext
from workers.api.contract import errors
from workers.api.models import ExportOut
from workers.api.present import check_times, iso
from workers.api.routes_video import CameraPath, in_scope
from workers.api.users import Permission

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["recordings"])
Who = Annotated[Principal, Depends(principal)]
STAMP_PATTERN = r"^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z$"
MAX_WINDOW = timedelta(hours=48)
MAX_EVENTS = 2000


def merge_spans(segments: list[SegmentEntry], tolerance_s: float = 1.5) -> list[tuple[datetime, datetime]]:
    """Recorded spans: segments joined where the next starts within ``tolerance_s`` of the previous end."""
    spans: list[tuple[datetime, datetime]] = []
    for seg in sorted(segments, key=lambda s: s.start_dt):
        if spans and not seg.after_gap and (seg.start_dt - spans[-1][1]).total_seconds() <= tolerance_s:
            spans[-1] = (spans[-1][0], max(spans[-1][1], seg.end_dt))
        else:
            spans.append((seg.start_dt, seg.end_dt))
    return spans


def _events(act: Action, camera_id: str, start: datetime, end: datetime) -> list[dict[str, object]]:
    search = act.ctx.search
    events: list[dict[str, object]] = []
    for a in search.alerts(cameras=[camera_id], start=start, end=end, limit=MAX_EVENTS):
        events.append({"kind": "alert", "time": iso(a.occurred_at), "id": a.alert_id, "severity": a.severity,
                       "label": a.message, "type": a.alert_type})
    if act.who.user.can(Permission.VIEW):
        for t in search.tracks(cameras=[camera_id], start=start, end=end, limit=MAX_EVENTS):
            label = f"{t.colour} {t.vehicle_type}" if t.vehicle_type else t.class_name
            events.append({"kind": "track", "time": iso(t.started_at), "end": iso(t.ended_at), "id": t.sighting_id,
                           "label": label})
        if act.who.user.can(Permission.SEARCH):
            for p in search.plate_reads(cameras=[camera_id], start=start, end=end, limit=MAX_EVENTS):
                events.append({"kind": "plate", "time": iso(p.captured_at), "id": p.read_id, "label": p.text})
    return sorted(events, key=lambda e: str(e["time"]))


@router.get("/recordings/{camera_id}/timeline", name="recordings.timeline",
            summary="Recorded spans, gaps, segments and events of a camera in a window", responses=errors(404))
def timeline(request: Request, who: Who, camera_id: CameraPath, start: datetime, end: datetime) -> dict[str, object]:
    with begin(request, who, "recordings.timeline", {"camera_id": camera_id, "start": iso(start), "end": iso(end)}) as act:
        act.need(Permission.RECORDINGS, "watch recordings")
        check_times(act, start, end)
        if end - start > MAX_WINDOW:
            raise act.refuse(422, "a timeline window may cover at most 48 hours", outcome="invalid")
        in_scope(act, camera_id)
        ctx: ApiContext = act.ctx
        segments = segments_between(ctx.store, camera_id, start, end, ctx.recordings_prefix)
        spans = merge_spans(segments)
        gaps = [(a[1], b[0]) for a, b in zip(spans, spans[1:], strict=False)]
        body: dict[str, object] = {
            "camera_id": camera_id, "start": iso(start), "end": iso(end),
            "spans": [{"start": iso(a), "end": iso(b)} for a, b in spans],
            "gaps": [{"start": iso(a), "end": iso(b)} for a, b in gaps],
            "segments": [{"start": s.start, "end": s.end, "codec": s.codec, "width": s.width, "height": s.height,
                          "url": f"/api/recordings/{camera_id}/segments/{stamp(s.start_dt)}.mp4"} for s in segments],
            "events": _events(act, camera_id, start, end),
            "can_export": who.user.can(Permission.EXPORT),
        }
        return act.done(body, count=len(segments), ids=[camera_id])


def _segment(ctx: ApiContext, camera_id: str, seg_stamp: str) -> SegmentEntry | None:
    try:
        at = datetime.strptime(seg_stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    for seg in segments_between(ctx.store, camera_id, at, at + timedelta(milliseconds=1), ctx.recordings_prefix):
        if stamp(seg.start_dt) == seg_stamp:
            return seg
    return None


def playback_file(ctx: ApiContext, camera_id: str, seg: SegmentEntry) -> tuple[FsPath, bool]:
    """The segment as a browser-playable MP4 in the cache (made on first use); (path, transcoded)."""
    folder = FsPath(ctx.api.cache_dir) / "playback" / camera_id
    path = folder / f"{stamp(seg.start_dt)}.mp4"
    transcoded = seg.codec != "h264"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part.mp4")
        make_clip(ctx.store, camera_id, seg.start_dt, seg.end_dt, part, prefix=ctx.recordings_prefix)
        part.replace(path)
        cache.trim(FsPath(ctx.api.cache_dir), ctx.api.cache_max_mb * 1_000_000, keep=path)
    return path, transcoded


@router.get("/recordings/{camera_id}/segments/{seg_stamp}.mp4", name="recordings.play", response_class=FileResponse,
            summary="One recorded segment as MP4 (a view, audited; not an export)",
            responses={**errors(404), 200: {"content": {"video/mp4": {}}}})
def play_segment(request: Request, who: Who, camera_id: CameraPath,
                 seg_stamp: Annotated[str, Path(pattern=STAMP_PATTERN)]) -> FileResponse:
    ranged = request.headers.get("range", "bytes=0-")
    first = re.match(r"bytes=0-", ranged) is not None
    with begin(request, who, "recordings.play", {"camera_id": camera_id, "segment": seg_stamp}) as act:
        act.need(Permission.RECORDINGS, "watch recordings")
        in_scope(act, camera_id)
        seg = _segment(act.ctx, camera_id, seg_stamp)
        if seg is None:
            raise act.refuse(404, f"no recorded segment {seg_stamp} of camera {camera_id}")
        try:
            path, transcoded = playback_file(act.ctx, camera_id, seg)
        except LookupError as exc:
            raise act.refuse(404, str(exc)) from None
        if first:  # the browser's follow-up range requests of the same segment are not audited again
            act.done(None, count=1, ids=[f"{camera_id}/{seg_stamp}"])
        else:
            act.recorded = True
        return FileResponse(path, media_type="video/mp4", headers={
            "Cache-Control": "private, max-age=600", "X-Transcoded": "true" if transcoded else "false",
            "X-Segment-Start": seg.start, "X-Segment-End": seg.end})


class RangeExport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime = Field(description="Start of the range (with a time zone).")
    end: datetime = Field(description="End of the range (with a time zone).")
    case: str | None = Field(None, max_length=100, description="The case the export belongs to.")


@router.post("/recordings/{camera_id}/export", response_model=ExportOut, name="recordings.export",
             summary="Export exactly a range of a camera's recordings (needs a case reference)", responses=errors(404))
def export_range(request: Request, who: Who, camera_id: CameraPath, body: RangeExport) -> ExportOut:
    params = {"camera_id": camera_id, "start": iso(body.start), "end": iso(body.end)}
    with begin(request, who, "export.range", params) as act:
        act.need(Permission.EXPORT, "export clips")
        case = act.need_case(body.case, "an export")
        check_times(act, body.start, body.end)
        if (body.end - body.start) > timedelta(seconds=act.ctx.api.clip_max_s):
            raise act.refuse(422, f"an export may cover at most {act.ctx.api.clip_max_s:.0f} s", outcome="invalid")
        in_scope(act, camera_id)
        try:
            rec = act.ctx.clips.export(user=who.user.name, case=case, camera_id=camera_id,
                                       sighting=f"range:{camera_id}", start=body.start, end=body.end)
        except LookupError as exc:
            raise act.refuse(404, str(exc)) from None
        act.params.update(export_id=rec.export_id, sha256=rec.sha256)
        out = ExportOut(export_id=rec.export_id, url=f"/api/exports/{rec.export_id}/clip.mp4", key=rec.key,
                        sha256=rec.sha256, bytes=rec.bytes, camera_id=rec.camera_id, case=rec.case, start=rec.start,
                        end=rec.end, duration_s=rec.duration_s, transcoded=rec.transcoded,
                        source_codec=rec.source_codec)
        return act.done(out, count=1, ids=[camera_id], exported=[rec.key])
