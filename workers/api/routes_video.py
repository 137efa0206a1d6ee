"""Live video: the camera list for the grid, a camera's current picture, its zones and lines, and the stream.

* ``GET /api/live`` — cameras in scope with their live state (codec, size, rate, bitrate, viewers).
* ``GET /api/live/{camera}/snapshot.jpg`` — the newest picture (decoded from the cached group of pictures).
* ``GET /api/cameras/{camera}/geometry`` — the camera's zones and lines (normalised), for overlays and editors.
* ``WS /api/live/{camera}/ws?mode=auto|jpeg&overlays=1`` — the stream (see :mod:`workers.api.viewer`).

Watching live is its own permission (``live``: admins, investigators, operators), limited to the caller's
cameras. A stream is audited twice: ``live.watch`` when it starts and ``live.watch.end`` when it ends, with its
duration, frames and bytes. While it runs, the caller's login, role and scope are checked again every
``api.live_recheck_s``; the stream ends when they no longer allow it. A WebSocket handshake must come from this
origin (a page elsewhere cannot open a stream with the user's cookie).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, WebSocket
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from pipeline.config.rules import RulesConfig
from pipeline.live.remux import MSE_CODECS, snapshot
from pipeline.rulesdoc import RulesDocument
from workers.api.auth import Action, Principal, authenticate, begin, principal
from workers.api.context import ApiContext
from workers.api.contract import errors
from workers.api.present import iso
from workers.api.users import CAMERA_ID_PATTERN, Permission
from workers.api.viewer import LiveViewer

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["live video"])
Who = Annotated[Principal, Depends(principal)]
CameraPath = Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]
_CAMERA_RE = re.compile(CAMERA_ID_PATTERN)


def in_scope(act: Action, camera_id: str) -> None:
    """Refuse (404, audited) a camera outside the caller's scope."""
    allowed = act.cameras([camera_id])
    if allowed is not None and camera_id not in allowed:
        raise act.refuse(404, f"no camera {camera_id!r} in your scope")


@router.get("/live", name="live.list", summary="Cameras in scope with their live state", responses=errors(404))
def live_list(request: Request, who: Who) -> dict[str, object]:
    with begin(request, who, "live.list") as act:
        act.need(Permission.LIVE, "watch live video")
        ctx: ApiContext = act.ctx
        allowed = act.cameras()
        known = ctx.directory.cameras()
        ids = sorted(set(known) | set(ctx.live.cameras()))
        if allowed is not None:
            ids = [c for c in ids if c in set(allowed)]
        cameras = []
        for cid in ids:
            state = ctx.live.state(cid)
            spec = known.get(cid)
            params = state.params
            cameras.append({
                "camera_id": cid, "name": (spec.name if spec else "") or cid, "kind": spec.kind if spec else None,
                "live": state.live, "codec": params.codec if params else None,
                "width": params.width if params else None, "height": params.height if params else None,
                "fps": round(state.fps, 2), "source_fps": params.fps if params else None,
                "kbps": round(state.kbps, 1), "viewers": state.viewers,
                "mode": None if params is None else ("fmp4" if params.codec in MSE_CODECS else "jpeg"),
                "age_s": None if state.age_s is None else round(state.age_s, 2),
                "last_captured_at": iso(state.last_captured),
            })
        return act.done({"count": len(cameras), "cameras": cameras}, count=len(cameras), ids=ids)


@router.get("/live/{camera_id}/snapshot.jpg", name="live.snapshot", response_class=Response,
            summary="The camera's newest picture", responses={**errors(404), 200: {"content": {"image/jpeg": {}}}})
def live_snapshot(request: Request, who: Who, camera_id: CameraPath) -> Response:
    with begin(request, who, "live.snapshot", {"camera_id": camera_id}) as act:
        act.need(Permission.LIVE, "watch live video")
        in_scope(act, camera_id)
        shot = snapshot(act.ctx.live.latest_gop(camera_id))
        if shot is None:
            raise act.refuse(404, f"camera {camera_id} has no live picture now")
        packet, jpeg = shot
        act.done(None, count=1, ids=[camera_id])
        return Response(jpeg, media_type="image/jpeg", headers={
            "Cache-Control": "no-store", "X-Captured-At": packet.captured_at.isoformat()})


def geometry(rules: RulesConfig, camera_id: str) -> dict[str, object]:
    zones, lines = [], []
    for entry in rules.entries_for(camera_id):
        zones += [{"id": z.id, "name": z.label, "polygon": [list(p) for p in z.polygon], "camera_id": entry.camera_id}
                  for z in entry.zones]
        lines += [{"id": ln.id, "name": ln.label, "a": list(ln.a), "b": list(ln.b), "camera_id": entry.camera_id}
                  for ln in entry.lines]
    return {"camera_id": camera_id, "zones": zones, "lines": lines}


@router.get("/cameras/{camera_id}/geometry", name="cameras.geometry",
            summary="The camera's zones and lines (normalised image coordinates)", responses=errors(404))
def camera_geometry(request: Request, who: Who, camera_id: CameraPath) -> dict[str, object]:
    with begin(request, who, "cameras.geometry", {"camera_id": camera_id}) as act:
        act.need(Permission.CAMERAS, "list cameras")
        in_scope(act, camera_id)
        body = geometry(current_rules(act.ctx), camera_id)
        return act.done(body, count=1, ids=[camera_id])


@router.get("/map", name="map.config", summary="The camera map's basemap and tile settings", responses=errors(404))
def map_config(request: Request, who: Who) -> dict[str, object]:
    with begin(request, who, "map.config") as act:
        act.need(Permission.CAMERAS, "list cameras")
        api = act.ctx.api
        return act.done({"basemap": "/static/vendor/world-atlas/countries-50m.json",
                         "basemap_source": "world-atlas 2.0.2 (Natural Earth, public domain; ISC)",
                         "tile_url": api.map_tile_url, "attribution": api.map_attribution})


def current_rules(ctx: ApiContext) -> RulesConfig:
    """The rules in force: the store's rules document when there is one, else the configuration's."""
    return RulesDocument(ctx.store).effective(ctx.config)


# -- the stream ------------------------------------------------------------------------------------
def _origin_ok(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser (scripts with a token)
    host = ws.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def _still_allowed(ctx: ApiContext, ws: WebSocket, user: str, camera_id: str) -> str:
    """'' while the caller may still watch ``camera_id``; else why not."""
    who = authenticate(ctx, ws)  # type: ignore[arg-type]
    if who is None or who.user.name != user:
        return "logged out"
    if not who.user.can(Permission.LIVE):
        return "no longer allowed to watch live video"
    allowed = ctx.directory.allowed(who.user)
    if allowed is not None and camera_id not in allowed:
        return "camera no longer in scope"
    return ""


def _open(ctx: ApiContext, ws: WebSocket, camera_id: str, mode: str, overlays: bool) -> Action | str:
    """The audited start of a stream, or the reason (already audited when there is a user) it is refused."""
    who = authenticate(ctx, ws)  # type: ignore[arg-type]
    if who is None:
        return "not authenticated"
    act = Action(ctx, who, "live.watch", {"camera_id": camera_id, "mode": mode, "overlays": overlays})
    try:
        if not _origin_ok(ws):
            raise act.refuse(403, "WebSocket from another origin")
        if not _CAMERA_RE.fullmatch(camera_id):
            raise act.refuse(422, "invalid camera ID", outcome="invalid")
        act.need(Permission.LIVE, "watch live video")
        in_scope(act, camera_id)
    except HTTPException as exc:
        return str(exc.detail)
    act.record("ok", 200, result_count=1, result_ids=[camera_id])
    return act


@router.websocket("/live/{camera_id}/ws", name="live.watch")
async def live_ws(ws: WebSocket, camera_id: str, mode: Literal["auto", "jpeg"] = "auto",
                  overlays: bool = False) -> None:
    ctx: ApiContext = ws.app.state.ctx
    opened = await run_in_threadpool(_open, ctx, ws, camera_id, mode, overlays)
    if isinstance(opened, str):
        await ws.close(code=1008, reason=opened[:120])
        return
    act = opened
    await ws.accept()
    viewer = LiveViewer(
        ws, ctx.live, camera_id, requested=mode, jpeg_fps=ctx.api.live_jpeg_max_fps,
        overlays=(lambda send: ctx.overlays.subscribe(camera_id, send)) if overlays else None,
        drop_overlays=(lambda send: ctx.overlays.unsubscribe(camera_id, send)) if overlays else None)
    reason = "error"
    try:
        reason = await viewer.run(lambda: _still_allowed(ctx, ws, act.who.user.name, camera_id), ctx.api.live_recheck_s)
    except Exception as exc:  # the client went away mid-send, mostly
        reason = type(exc).__name__
        log.debug("live viewer of %s ended: %r", camera_id, exc)
    finally:
        # Written here, synchronously (one store write): a cancelled task (server shutdown) still audits the end.
        _audit_end(act, viewer, reason)
    if reason != "viewer left":
        try:
            await ws.close(code=1000, reason=reason[:120])
        except RuntimeError:  # already closed
            pass


def _audit_end(act: Action, viewer: LiveViewer, reason: str) -> None:
    end = Action(act.ctx, act.who, "live.watch.end", dict(act.params))
    stats = viewer.stats
    try:
        end.record("ok", 200, reason=reason, result_count=stats.frames, result_ids=[viewer.camera_id],
                   extra={"watch": {"duration_s": stats.duration_s, "frames": stats.frames, "bytes": stats.bytes,
                                    "sessions": stats.sessions}})
    except HTTPException:
        log.error("could not audit the end of a live view of %s", viewer.camera_id)
