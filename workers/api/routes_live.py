"""Alerts (history and a live server-sent-event stream) and cameras with their status, all scoped.

The stream (``GET /api/alerts/stream``, ``text/event-stream``) first replays the newest alerts of
the catalog and of the live follower (de-duplicated by ``alert_id``), then sends each new alert as
``event: alert`` with the alert's JSON, and a comment line every ``api.sse_keepalive_s`` so
proxies keep the connection open. Opening a stream is audited once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from workers.api.auth import Action, Principal, begin, principal
from workers.api.models import AlertOut, AlertResults, CameraList
from workers.api.present import alert_json, alert_out, camera_out, check_times, iso, scope_label
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["alerts and cameras"])
Who = Annotated[Principal, Depends(principal)]
AlertType = Literal["zone_intrusion", "line_crossing", "loitering", "crowding", "camera_offline", "plate_hotlist"]
REPLAY = 50
SEEN_IDS = 10_000


@router.get("/alerts", response_model=AlertResults, name="alerts.list", summary="Alerts from the catalog, newest first")
def list_alerts(
    request: Request,
    who: Who,
    camera: Annotated[list[str] | None, Query(max_length=1000)] = None,
    alert_type: Annotated[AlertType | None, Query(alias="type")] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> AlertResults:
    params = {"camera": camera, "type": alert_type, "start": iso(start), "end": iso(end), "limit": limit}
    with begin(request, who, "alerts.list", params) as act:
        act.need(Permission.ALERTS, "read alerts")
        check_times(act, start, end)
        cams = act.cameras(camera)
        hits = act.ctx.search.alerts(cameras=cams, start=start, end=end, alert_type=alert_type,
                                     limit=min(limit, act.ctx.api.max_results))
        body = AlertResults(count=len(hits), scope=scope_label(cams), alerts=[alert_out(act, h) for h in hits])
        return act.done(body, count=len(hits), ids=[h.alert_id for h in hits])


def _replay(act: Action, cams: list[str] | None, live: list) -> list[tuple[str, str]]:  # noqa: ANN001
    """(alert_id, json) of the newest alerts from the catalog and the live backlog, oldest first."""
    seen: dict[str, tuple[datetime, str]] = {}
    for hit in act.ctx.search.alerts(cameras=cams, limit=REPLAY):
        seen[hit.alert_id] = (hit.occurred_at, alert_out(act, hit).model_dump_json())
    for alert in live:
        if cams is None or alert.camera_id in cams:
            seen[alert.alert_id] = (alert.occurred_at, alert_json(act, alert))
    ordered = sorted(seen.items(), key=lambda kv: kv[1][0])[-REPLAY:]
    return [(alert_id, body) for alert_id, (_, body) in ordered]


def _event(alert_id: str, body: str) -> str:
    return f"id: {alert_id}\nevent: alert\ndata: {body}\n\n"


@router.get("/alerts/stream", name="alerts.stream", response_class=StreamingResponse,
            summary="Live alerts in scope as server-sent events", responses={200: {"content": {"text/event-stream": {}}}})
async def alert_stream(request: Request, who: Who) -> StreamingResponse:
    with begin(request, who, "alerts.stream", {}) as act:
        act.need(Permission.ALERTS, "read alerts")
        cams = await run_in_threadpool(act.cameras)
        sub, backlog = act.ctx.alerts.subscribe()
        try:
            replay = await run_in_threadpool(_replay, act, cams, backlog)
            await run_in_threadpool(act.done, None, count=len(replay), ids=[a for a, _ in replay])
        except BaseException:
            act.ctx.alerts.unsubscribe(sub)
            raise
    allowed = None if cams is None else frozenset(cams)
    keepalive = act.ctx.api.sse_keepalive_s

    async def events() -> AsyncIterator[str]:
        sent = {alert_id for alert_id, _ in replay}
        try:
            yield f"retry: 3000\n: scope {scope_label(cams)}\n\n"
            for alert_id, body in replay:
                yield _event(alert_id, body)
            while not await request.is_disconnected():
                try:
                    alert = await asyncio.wait_for(sub.queue.get(), timeout=keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if (allowed is not None and alert.camera_id not in allowed) or alert.alert_id in sent:
                    continue
                if len(sent) > SEEN_IDS:
                    sent.clear()
                sent.add(alert.alert_id)
                yield _event(alert.alert_id, alert_json(act, alert))
        finally:
            act.ctx.alerts.unsubscribe(sub)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/cameras", response_model=CameraList, name="cameras.list",
            summary="Cameras in scope with their registry record and connection status")
def list_cameras(request: Request, who: Who) -> CameraList:
    with begin(request, who, "cameras.list", {}) as act:
        act.need(Permission.CAMERAS, "list cameras")
        cams = act.cameras()
        states = act.ctx.search.camera_status(cameras=cams)
        body = CameraList(count=len(states), scope=scope_label(cams), cameras=[camera_out(s) for s in states])
        return act.done(body, count=len(states), ids=[s.camera_id for s in states])


__all__ = ["AlertOut", "router"]
