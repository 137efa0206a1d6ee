"""Alerts (history and a live server-sent-event stream) and cameras with their status, all scoped.

The stream (``GET /api/alerts/stream``, ``text/event-stream``) first replays the newest alerts of
the catalog and of the live follower (de-duplicated by ``alert_id``), then sends each new alert as
``event: alert`` with the alert's JSON, and a comment line every ``api.sse_keepalive_s`` so
proxies keep the connection open. Every ``api.stream_recheck_s`` the stream's credentials are
authenticated again and the user's role and camera scope compared with those it opened with: a revoked
token, an ended session, a disabled user, a lost ``alerts`` permission or a changed scope closes the stream
(``event: closed`` with the reason; the browser's EventSource reconnects and gets what the user may now
see, or 401/403). Opening a stream and closing it for a change are audited. Operators' actions on alerts (acknowledged,
assigned, notes) arrive as ``event: update`` with the alert's desk record.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from schemas.alerts import AlertType
from workers.api.alerts import Subscription
from workers.api.auth import Action, Principal, begin, principal, recheck
from workers.api.contract import SSE_EVENT, errors
from workers.api.desk import DeskRecord
from workers.api.ids import CameraFilter, Instant
from workers.api.models import AlertOut, AlertResults, CameraList
from workers.api.present import alert_json, alert_out, camera_out, check_times, iso, scope_label
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["alerts and cameras"])
Who = Annotated[Principal, Depends(principal)]
REPLAY = 50
SEEN_IDS = 10_000


@router.get("/alerts", response_model=AlertResults, name="alerts.list", summary="Alerts from the catalog, newest first",
            responses=errors())
def list_alerts(
    request: Request,
    who: Who,
    camera: CameraFilter = None,
    alert_type: Annotated[AlertType | None, Query(alias="type")] = None,
    start: Instant | None = None,
    end: Instant | None = None,
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
            summary="Live alerts in scope as server-sent events (closed when access changes)",
            responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                             "description": "The event stream; each event as described."}, **errors()})
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
    return StreamingResponse(_events(request, act, sub, cams, replay), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(request: Request, act: Action, sub: Subscription, cams: list[str] | None,
                  replay: list[tuple[str, str]]) -> AsyncIterator[str]:
    """The stream's body: scope comment, replay, then live alerts, keep-alives and access re-checks."""
    allowed = None if cams is None else frozenset(cams)
    api = act.ctx.api
    sent = {alert_id for alert_id, _ in replay}
    next_check = time.monotonic() + api.stream_recheck_s
    next_keepalive = time.monotonic() + api.sse_keepalive_s
    try:
        yield f"retry: 3000\n: scope {scope_label(cams)}\n\n"
        for alert_id, body in replay:
            yield _event(alert_id, body)
        while not await request.is_disconnected():
            now = time.monotonic()
            if now >= next_check:
                reason = await run_in_threadpool(recheck, act.ctx, request, act.who, Permission.ALERTS, cams)
                if reason is not None:
                    await run_in_threadpool(_audit_close, act, reason)
                    yield f"event: closed\ndata: {json.dumps({'reason': reason})}\n\n"
                    return
                next_check = now + api.stream_recheck_s
            if now >= next_keepalive:
                yield ": keep-alive\n\n"
                next_keepalive = now + api.sse_keepalive_s
            try:
                wait = max(0.05, min(next_check, next_keepalive) - time.monotonic())
                alert = await asyncio.wait_for(sub.queue.get(), timeout=wait)
            except TimeoutError:
                continue
            if allowed is not None and alert.camera_id not in allowed:
                continue
            if isinstance(alert, DeskRecord):  # an operator acted on an alert
                yield f"event: update\ndata: {json.dumps(alert.public())}\n\n"
                continue
            if alert.alert_id in sent:
                continue
            if len(sent) > SEEN_IDS:
                sent.clear()
            sent.add(alert.alert_id)
            yield _event(alert.alert_id, alert_json(act, alert))
    finally:
        act.ctx.alerts.unsubscribe(sub)


def _audit_close(act: Action, reason: str) -> None:
    closing = Action(act.ctx, act.who, "alerts.stream", dict(act.params))
    closing.record("closed", 200, reason=f"stream closed: {reason}")


@router.get("/cameras", response_model=CameraList, name="cameras.list",
            summary="Cameras in scope with their registry record and connection status", responses=errors())
def list_cameras(request: Request, who: Who) -> CameraList:
    with begin(request, who, "cameras.list", {}) as act:
        act.need(Permission.CAMERAS, "list cameras")
        cams = act.cameras()
        states = act.ctx.search.camera_status(cameras=cams)
        body = CameraList(count=len(states), scope=scope_label(cams), cameras=[camera_out(s) for s in states])
        return act.done(body, count=len(states), ids=[s.camera_id for s in states])


__all__ = ["AlertOut", "router"]
