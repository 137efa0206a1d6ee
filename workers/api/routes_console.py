"""The alert console's actions: acknowledge, assign, note — audited, stored, and pushed to every operator live.

* ``POST /api/alerts/desk/lookup`` ``{alerts: [{camera_id, alert_id}]}`` — the desk records of listed alerts.
* ``POST /api/alerts/{alert_id}/desk`` ``{camera_id, occurred_at, action: ack|assign|note, value}`` — act on one
  alert. The alert must exist (the live feed or the catalog) on a camera in the caller's scope. Each action is
  an audit entry (``alerts.ack``, ``alerts.assign``, ``alerts.note``) and an ``update`` event on every open
  alert stream (:mod:`workers.api.routes_live`), so other operators see it without reloading.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from workers.api.auth import Principal, begin, principal
from workers.api.context import ApiContext
from workers.api.contract import errors
from workers.api.desk import ALERT_ID_RE, MAX_NOTE, AlertDesk
from workers.api.present import check_times
from workers.api.routes_video import in_scope
from workers.api.users import CAMERA_ID_PATTERN, USER_NAME_PATTERN, Permission

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["alert console"])
Who = Annotated[Principal, Depends(principal)]
AlertIdPath = Annotated[str, Path(pattern=ALERT_ID_RE.pattern)]


class AlertRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    alert_id: str = Field(pattern=ALERT_ID_RE.pattern)


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[AlertRef] = Field(max_length=500)


class DeskAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    occurred_at: datetime = Field(description="The alert's time (finds it in the catalog).")
    action: Literal["ack", "assign", "note"]
    value: str = Field("", max_length=MAX_NOTE, description="ack: an optional note; assign: a user name "
                       "(empty: unassign); note: the text.")


def _desk(ctx: ApiContext) -> AlertDesk:
    assert ctx.desk is not None
    return ctx.desk


@router.post("/alerts/desk/lookup", name="alerts.desk", summary="What operators did about listed alerts", responses=errors(404))
def lookup(request: Request, who: Who, body: LookupRequest) -> dict[str, object]:
    with begin(request, who, "alerts.desk", {"count": len(body.alerts)}) as act:
        act.need(Permission.ALERTS, "read alerts")
        allowed = act.cameras([a.camera_id for a in body.alerts])
        desk = _desk(act.ctx)
        records = [desk.get(a.camera_id, a.alert_id).public() for a in body.alerts
                   if allowed is None or a.camera_id in allowed]
        return act.done({"records": records}, count=len(records))


def _exists(ctx: ApiContext, camera_id: str, alert_id: str, occurred_at: datetime) -> bool:
    if any(a.alert_id == alert_id and a.camera_id == camera_id for a in list(ctx.alerts.recent)):
        return True
    hits = ctx.search.alerts(cameras=[camera_id], start=occurred_at - timedelta(seconds=1),
                             end=occurred_at + timedelta(seconds=1), limit=1000)
    return any(h.alert_id == alert_id for h in hits)


@router.post("/alerts/{alert_id}/desk", name="alerts.act", summary="Acknowledge, assign or annotate an alert", responses=errors(404))
def act_on_alert(request: Request, who: Who, alert_id: AlertIdPath, body: DeskAction) -> dict[str, object]:
    params = {"alert_id": alert_id, "camera_id": body.camera_id, "action": body.action,
              "value": body.value[:200] if body.action == "assign" else len(body.value)}
    with begin(request, who, f"alerts.{body.action}", params) as act:
        act.need(Permission.ALERTS, "act on alerts")
        check_times(act, body.occurred_at, None)
        in_scope(act, body.camera_id)
        if not _exists(act.ctx, body.camera_id, alert_id, body.occurred_at):
            raise act.refuse(404, f"no alert {alert_id!r} on camera {body.camera_id}")
        value = body.value.strip()
        if body.action == "assign" and value:
            user = act.ctx.users.get(value) if re.fullmatch(USER_NAME_PATTERN, value) else None
            if user is None or user.disabled or not user.can(Permission.ALERTS):
                raise act.refuse(422, f"{value!r} is not a user who handles alerts", outcome="invalid")
        if body.action == "note" and not value:
            raise act.refuse(422, "a note needs text", outcome="invalid")
        record = _desk(act.ctx).act(body.camera_id, alert_id, who.user.name, body.action, value)
        return act.done(record.public(), count=1, ids=[alert_id])
