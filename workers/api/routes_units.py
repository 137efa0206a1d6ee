"""Administrative units and time-boxed elevated access over the API.

* ``GET /api/units`` — the unit tree (province → city → county → station, GB/T 2260 codes; a camera's unit from
  its registry record or its GB/T 28181 ID) of the cameras in the caller's scope.
* ``POST /api/elevations`` — ask for more units or cameras for some hours, with a reason (and a case);
  ``GET /api/elevations`` — one's own requests (admins: everyone's);
  ``POST /api/elevations/{user}/{id}/{approve|reject|revoke}`` — admins, never for their own request. An approved
  elevation counts from approval for its hours (at most ``cases.elevation_max_hours``) and then ends by itself;
  every call made under it names it in its audit entry (``params.elevations``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from pipeline.cameras.units import camera_unit, unit_tree
from pipeline.cases.elevation import CAMERA, ELEVATION_ID, UNIT, Elevation, ElevationError, Elevations
from workers.api.auth import Principal, begin, principal
from workers.api.contract import errors
from workers.api.users import USER_NAME_PATTERN, Permission, Role

router = APIRouter(prefix="/api", tags=["units and elevated access"])
Who = Annotated[Principal, Depends(principal)]


class UnitNodeOut(BaseModel):
    code: str
    level: str
    cameras: list[str]
    children: list[UnitNodeOut]


class UnitTreeOut(BaseModel):
    count: int = Field(description="Cameras in the tree.")
    units: list[UnitNodeOut]
    without_unit: list[str] = Field(description="Cameras in scope with no unit (no registry unit, no GB ID).")


class ElevationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(pattern=UNIT)]] = Field(default_factory=list, max_length=100)
    cameras: list[Annotated[str, Field(pattern=CAMERA)]] = Field(default_factory=list, max_length=1000)
    reason: str = Field(min_length=1, max_length=1000)
    hours: float = Field(gt=0, le=720)
    case: str | None = Field(None, max_length=100, description="The case it is for (optional).")


class ElevationOut(BaseModel):
    id: str
    user: str
    units: list[str]
    cameras: list[str]
    reason: str
    case: str | None
    hours: float
    status: Literal["requested", "approved", "rejected", "revoked"]
    active: bool
    requested_at: datetime
    decided_by: str
    decided_at: datetime | None
    expires_at: datetime | None


class ElevationList(BaseModel):
    count: int
    elevations: list[ElevationOut]


def _out(e: Elevation) -> ElevationOut:
    data = e.model_dump(exclude={"version"})
    return ElevationOut(**data, active=e.active())


@router.get("/units", response_model=UnitTreeOut, name="units.tree", summary="The unit tree of the cameras in scope",
            responses=errors())
def units(request: Request, who: Who) -> UnitTreeOut:
    with begin(request, who, "units.tree") as act:
        act.need(Permission.CAMERAS, "see cameras")
        allowed = act.cameras()
        cams = [c for c in act.ctx.directory.cameras().values() if allowed is None or c.id in allowed]
        pairs = [(c.id, camera_unit(c.admin_unit, c.id, c.gb_device_id)) for c in cams]
        tree = [n.as_dict() for n in unit_tree(pairs)]
        body = UnitTreeOut(count=len(cams), units=tree, without_unit=sorted(cid for cid, u in pairs if not u))
        return act.done(body, count=len(cams))


@router.post("/elevations", response_model=ElevationOut, name="elevations.request",
             summary="Ask for time-boxed access to more units or cameras", responses=errors())
def request_elevation(request: Request, who: Who, body: ElevationIn) -> ElevationOut:
    with begin(request, who, "elevations.request", body.model_dump()) as act:
        act.need(Permission.CAMERAS, "ask for access")
        act.case = body.case
        try:
            e = Elevations(act.ctx.store).request(who.user.name, units=body.units, cameras=body.cameras,
                                                  reason=body.reason, hours=body.hours, case=body.case)
        except ElevationError as exc:
            raise act.refuse(exc.status, str(exc), outcome="invalid") from None
        return act.done(_out(e), count=1, ids=[e.id])


@router.get("/elevations", response_model=ElevationList, name="elevations.list",
            summary="Your elevation requests (admins: everyone's)", responses=errors())
def list_elevations(request: Request, who: Who) -> ElevationList:
    with begin(request, who, "elevations.list") as act:
        act.need(Permission.CAMERAS, "see access requests")
        store = Elevations(act.ctx.store)
        found = store.all() if who.user.role is Role.ADMIN else store.of(who.user.name)
        return act.done(ElevationList(count=len(found), elevations=[_out(e) for e in found]), count=len(found))


@router.post("/elevations/{user}/{elevation_id}/{decision}", response_model=ElevationOut, name="elevations.decide",
             summary="Approve, reject or revoke an elevation (admins; not one's own)", responses=errors(404, 409))
def decide(request: Request, who: Who, user: Annotated[str, Path(pattern=USER_NAME_PATTERN)],
           elevation_id: Annotated[str, Path(pattern=ELEVATION_ID)],
           decision: Literal["approve", "reject", "revoke"]) -> ElevationOut:
    params = {"user": user, "id": elevation_id, "decision": decision}
    with begin(request, who, "elevations.decide", params) as act:
        act.need(Permission.USERS, "decide access requests")
        status = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[decision]
        try:
            e = Elevations(act.ctx.store).decide(user, elevation_id, status,  # type: ignore[arg-type]
                                                 by=who.user.name, max_hours=act.ctx.config.cases.elevation_max_hours)
        except ElevationError as exc:
            raise act.refuse(exc.status, str(exc)) from None
        act.params.update(expires_at=e.expires_at.isoformat() if e.expires_at else None)
        return act.done(_out(e), count=1, ids=[e.id])
