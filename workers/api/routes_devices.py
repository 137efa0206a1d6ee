"""Camera devices: PTZ and presets, and recordings kept on the device, for cameras in the caller's scope.

* ``POST /api/cameras/{camera}/ptz`` — move (pan/tilt/zoom at a speed), stop, set/call/delete a preset, set the
  home position (``devices.ptz``; needs the ``ptz`` permission: operators and admins). Rate-limited per user
  and camera (429 with ``Retry-After``). 409 for a camera that is not a GB/T 28181 channel or whose device is
  reported offline. 202: the command is on its way to the ingest worker holding the device.
* ``GET /api/cameras/{camera}/device-recordings?start=&end=`` — the device's own recordings ("on device" on
  the operator timeline; ``devices.recordings``).
* ``POST /api/cameras/{camera}/device-recordings`` — ask the device again for its recordings of a range
  (``refresh``) or copy them into Tubeline's recordings (``download``, needs export rights)
  (``devices.recordings.request``).

Every call is audited; a camera outside the caller's scope does not exist for them (404).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictInt, ValidationError

from pipeline.device_recordings import device_spans_between
from workers.api.auth import Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.devices import RateLimited
from workers.api.ids import CameraPath, Instant
from workers.api.models import Out
from workers.api.present import check_times, iso
from workers.api.users import Permission

router = APIRouter(prefix="/api/cameras", tags=["devices"])
Who = Annotated[Principal, Depends(principal)]


class PtzIn(Out):
    action: Literal["move", "stop", "preset_set", "preset_call", "preset_delete", "home"]
    pan: StrictInt = Field(0, ge=-1, le=1, description="-1 left, 1 right")
    tilt: StrictInt = Field(0, ge=-1, le=1, description="-1 down, 1 up")
    zoom: StrictInt = Field(0, ge=-1, le=1, description="-1 out, 1 in")
    speed: StrictInt = Field(128, ge=1, le=255)
    preset: StrictInt | None = Field(None, ge=1, le=255)
    enabled: StrictBool = True
    reset_s: StrictInt = Field(60, ge=0, le=86400)


class CommandOut(Out):
    command_id: str
    camera_id: str
    action: str
    status: Literal["sent"] = "sent"


class DeviceSpanOut(Out):
    start: datetime
    end: datetime
    kind: str
    size_bytes: int | None = None


class DeviceRecordingsOut(Out):
    camera_id: str
    spans: list[DeviceSpanOut] = Field(description="Recordings on the device, oldest first (as last queried).")


class DeviceRecordingsIn(Out):
    action: Literal["refresh", "download"]
    start: Instant
    end: Instant


def _camera_in_scope(act: Action, camera_id: str) -> None:
    allowed = act.cameras()
    if allowed is not None and camera_id not in allowed:
        raise act.refuse(404, f"no camera {camera_id!r} in your camera scope")


def _steerable(act: Action, camera_id: str) -> None:
    """Refuse (409) a camera that cannot take PTZ commands: not a GB/T 28181 channel, or its device is offline."""
    states = [s for s in act.ctx.search.camera_status(cameras=[camera_id]) if s.camera_id == camera_id]
    if not states:
        return  # not registered (yet) and no status: the ingest worker decides
    state = states[0]
    if state.kind is not None and state.kind != "gb28181":
        raise act.refuse(409, f"camera {camera_id} is a {state.kind} camera: only GB/T 28181 channels take PTZ "
                              "commands", outcome="invalid")
    if state.status == "offline":
        why = f" ({state.reason})" if state.reason else ""
        raise act.refuse(409, f"the device of camera {camera_id} is offline{why}: the command cannot reach it",
                         outcome="failed")


def _send(act: Action, camera_id: str, action: str, **params: object) -> CommandOut | JSONResponse:
    desk = act.ctx.devices
    if desk is None or not desk.available:
        raise act.refuse(503, "device commands are not available (no shared message bus)", outcome="failed")
    try:
        command = desk.prepare(camera_id, act.who.user.name, action, **params)
    except RateLimited as exc:
        act.record("refused", 429, reason=str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=429,
                            headers={"Retry-After": str(max(1, round(exc.retry_after_s + 0.5)))})
    except (ValidationError, ValueError) as exc:
        raise act.refuse(422, f"invalid command: {str(exc).splitlines()[-1][:200]}", outcome="invalid") from None
    act.params["command_id"] = command.command_id
    out = act.done(CommandOut(command_id=command.command_id, camera_id=camera_id, action=action), count=1,
                   ids=[command.command_id])  # audited before it is sent
    try:
        desk.publish(command)
    except Exception as exc:
        act.record("failed", 503, reason=f"could not send the command: {exc}"[:300])
        raise HTTPException(503, "the command could not be sent; try again") from None
    return out


@router.post("/{camera_id}/ptz", response_model=CommandOut, status_code=202, name="devices.ptz",
             summary="Move a PTZ camera, use its presets or set its home position",
             responses=errors(404, 409, 429))
def ptz(request: Request, who: Who, camera_id: CameraPath, body: PtzIn) -> CommandOut | JSONResponse:
    params = {"camera_id": camera_id, **body.model_dump()}
    with begin(request, who, "devices.ptz", params) as act:
        act.need(Permission.PTZ, "control cameras")
        _camera_in_scope(act, camera_id)
        _steerable(act, camera_id)
        fields = body.model_dump(exclude={"action"}, exclude_none=True)
        return _send(act, camera_id, body.action, **fields)


@router.get("/{camera_id}/device-recordings", response_model=DeviceRecordingsOut, name="devices.recordings",
            summary="Recordings kept on the camera's device (the 'on device' timeline)", responses=errors(404))
def device_recordings(request: Request, who: Who, camera_id: CameraPath, start: Instant | None = None,
                      end: Instant | None = None,
                      days: Annotated[int, Query(ge=1, le=31, description="Without start/end: the last N days.")] = 1,
                      ) -> DeviceRecordingsOut:
    params = {"camera_id": camera_id, "start": iso(start), "end": iso(end), "days": days}
    with begin(request, who, "devices.recordings", params) as act:
        act.need(Permission.CAMERAS, "see camera recordings")
        check_times(act, start, end)
        _camera_in_scope(act, camera_id)
        until = end or datetime.now(UTC)
        since = start or until - timedelta(days=days)
        if until - since > timedelta(days=32):
            raise act.refuse(422, "at most 32 days at a time", outcome="invalid")
        spans = device_spans_between(act.ctx.store, act.ctx.recordings_prefix, camera_id, since, until)
        out = [DeviceSpanOut(start=s.start, end=s.end, kind=s.kind, size_bytes=s.size_bytes) for s in spans]
        return act.done(DeviceRecordingsOut(camera_id=camera_id, spans=out), count=len(out))


@router.post("/{camera_id}/device-recordings", response_model=CommandOut, status_code=202,
             name="devices.recordings.request",
             summary="Ask the device again for its recordings of a range, or download them into Tubeline's",
             responses=errors(404, 429))
def request_device_recordings(request: Request, who: Who, camera_id: CameraPath,
                              body: DeviceRecordingsIn) -> CommandOut | JSONResponse:
    params = {"camera_id": camera_id, "action": body.action, "start": iso(body.start), "end": iso(body.end)}
    with begin(request, who, "devices.recordings.request", params) as act:
        act.need(Permission.EXPORT if body.action == "download" else Permission.CAMERAS,
                 "copy recordings from devices" if body.action == "download" else "see camera recordings")
        check_times(act, body.start, body.end)
        _camera_in_scope(act, camera_id)
        if body.end - body.start > timedelta(days=1):
            raise act.refuse(422, "at most one day at a time", outcome="invalid")
        action = "record_info" if body.action == "refresh" else "download"
        return _send(act, camera_id, action, start=body.start.astimezone(UTC), end=body.end.astimezone(UTC))
