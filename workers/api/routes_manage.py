"""Administration for admins: cameras, the rules document (zones, lines, rules) and users — versioned and audited.

* ``GET /api/admin/cameras`` / ``PUT /api/admin/cameras/{id}`` / ``DELETE /api/admin/cameras/{id}`` — the
  camera registry (RTSP, GB/T 28181, file). The ingest worker re-reads the registry every
  ``ingest.registry_refresh_s`` and starts, restarts or stops cameras: no restart needed. A password is kept
  unless a new one is sent; storing one needs the registry key (``secrets``), as ``tubeline cameras`` does.
* ``GET /api/admin/rules`` / ``PUT /api/admin/rules`` ``{expect_version, rules}`` — the rules document
  (:mod:`pipeline.rulesdoc`), validated by the same model as the configuration; 409 when someone saved since.
  The rules worker swaps the new version in within ``rules.document_poll_s``.
* ``POST /api/admin/users`` / ``PATCH /api/admin/users/{name}`` / ``DELETE /api/admin/users/{name}`` — users,
  roles, scopes; a role, scope or password change or a disable ends the user's sessions.

Every change writes a change record (``admin/changes/{time}-{kind}-{id}.json``: who, when, before, after — never a
password) and an audit entry naming it.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, ValidationError

from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec
from pipeline.rulesdoc import RulesDocument, VersionConflict
from pipeline.sealing import SealingError
from pipeline.store.base import StoreError
from workers.api.auth import Action, Principal, begin, principal
from workers.api.context import ApiContext
from workers.api.contract import errors
from workers.api.routes_video import CameraPath
from workers.api.users import USER_NAME_PATTERN, Permission, Role, Scope, UserError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin", tags=["administration"])
Who = Annotated[Principal, Depends(principal)]
UserPath = Annotated[str, Path(pattern=USER_NAME_PATTERN)]
CHANGES_PREFIX = "admin/changes"


def record_change(act: Action, kind: str, ident: str, before: Any, after: Any) -> str:
    """Store who changed what (secrets never included); returns the change record's key."""
    now = datetime.now(UTC)
    key = f"{CHANGES_PREFIX}/{now.strftime('%Y%m%dT%H%M%S.%f')}-{kind}-{ident}-{secrets.token_hex(3)}.json"
    body = {"kind": kind, "id": ident, "user": act.who.user.name, "at": now.isoformat(), "before": before, "after": after}
    act.ctx.store.put(key, json.dumps(body, indent=1, default=str).encode(), content_type="application/json")
    act.params["change"] = key
    return key


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:10])


# -- cameras -------------------------------------------------------------------------------------
def _public(cam: CameraSpec) -> dict[str, Any]:
    data = cam.model_dump(mode="json", exclude={"password"})
    data["has_password"] = cam.password is not None
    return data


class CameraEdit(BaseModel):
    """A camera as the admin form sends it (the ID is in the path)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    kind: Literal["file", "rtsp", "gb28181"] = "rtsp"
    url: str = Field("", max_length=2000)
    username: str | None = Field(None, max_length=200)
    password: SecretStr | None = Field(None, description="A new password; null keeps the stored one.")
    clear_password: bool = False
    gb_device_id: str | None = None
    transport: Literal["auto", "tcp", "udp", "tcp_passive", "tcp_active"] = "auto"
    device_type: Literal["camera", "ipc", "dvr", "nvr", "encoder", "file", "other"] = "camera"
    point_class: Literal["I", "II", "III"] | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    admin_unit: str = Field("", max_length=100)
    enabled: bool = True
    loop: bool = False
    analysis_fps: float | None = Field(None, gt=0, le=60)
    record: bool | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)


def _registry(ctx: ApiContext, with_key: bool) -> CameraRegistry:
    prefix = ctx.config.cameras.registry_prefix
    return CameraRegistry(ctx.store, prefix, keyring=ctx.config.secrets.keyring() if with_key else None)


@router.get("/cameras", name="admin.cameras", summary="Every registered camera (passwords never shown)", responses=errors(404))
def list_cameras(request: Request, who: Who) -> dict[str, object]:
    with begin(request, who, "admin.cameras") as act:
        act.need(Permission.ADMINISTER, "administer")
        cams = _registry(act.ctx, False).list()
        static = [c for c in act.ctx.config.cameras.static if c.id not in {x.id for x in cams}]
        body: dict[str, object] = {"cameras": [_public(c) | {"source": "registry"} for c in cams]
                + [_public(c) | {"source": "config"} for c in static]}
        return act.done(body, count=len(cams) + len(static))


@router.put("/cameras/{camera_id}", name="admin.camera.put", summary="Add or change a camera", responses=errors(404))
def put_camera(request: Request, who: Who, camera_id: CameraPath, body: CameraEdit) -> dict[str, object]:
    with begin(request, who, "admin.camera.put", {"camera_id": camera_id, "kind": body.kind}) as act:
        act.need(Permission.ADMINISTER, "administer")
        reg = _registry(act.ctx, body.password is not None)
        old = reg.get(camera_id) if reg.exists(camera_id) else None
        fields = body.model_dump(exclude={"password", "clear_password"})
        password = None if body.clear_password else (body.password if body.password is not None else
                                                     (old.password if old is not None else None))
        try:
            cam = CameraSpec.model_validate({**fields, "id": camera_id, "password": None}).model_copy(
                update={"password": password})
        except ValidationError as exc:
            raise act.refuse(422, _errors(exc), outcome="invalid") from None
        try:
            reg.put(cam)
        except SealingError as exc:
            raise act.refuse(422, f"{exc} (set camera passwords where the registry key is: "
                                  "'tubeline cameras add --ask-password')", outcome="invalid") from None
        record_change(act, "camera", camera_id, _public(old) if old else None, _public(cam))
        act.ctx.directory.invalidate()
        return act.done(_public(cam), count=1, ids=[camera_id])


@router.delete("/cameras/{camera_id}", name="admin.camera.delete", summary="Remove a camera from the registry", responses=errors(404))
def delete_camera(request: Request, who: Who, camera_id: CameraPath) -> dict[str, object]:
    with begin(request, who, "admin.camera.delete", {"camera_id": camera_id}) as act:
        act.need(Permission.ADMINISTER, "administer")
        reg = _registry(act.ctx, False)
        if not reg.exists(camera_id):
            raise act.refuse(404, f"no registered camera {camera_id!r}")
        old = reg.get(camera_id)
        reg.delete(camera_id)
        record_change(act, "camera", camera_id, _public(old), None)
        act.ctx.directory.invalidate()
        return act.done({"deleted": camera_id}, count=1, ids=[camera_id])


# -- rules ---------------------------------------------------------------------------------------
class RulesEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expect_version: StrictInt = Field(ge=0, description="The version the edit started from (0: the configuration's).")
    rules: dict[str, Any]


@router.get("/rules", name="admin.rules", summary="The rules in force (zones, lines, rules) and their version", responses=errors(404))
def get_rules(request: Request, who: Who) -> dict[str, object]:
    with begin(request, who, "admin.rules") as act:
        act.need(Permission.ADMINISTER, "administer")
        doc = RulesDocument(act.ctx.store)
        saved = doc.load()
        rules = saved.rules if saved else doc.effective(act.ctx.config)
        body: dict[str, object] = {"version": saved.version if saved else 0, "updated_at": saved.updated_at if saved else None,
                "updated_by": saved.updated_by if saved else None, "rules": rules.model_dump(mode="json")}
        return act.done(body, count=1)


@router.put("/rules", name="admin.rules.put", summary="Save a new version of the rules (validated)", responses=errors(404, 409))
def put_rules(request: Request, who: Who, body: RulesEdit) -> dict[str, object]:
    with begin(request, who, "admin.rules.put", {"expect_version": body.expect_version}) as act:
        act.need(Permission.ADMINISTER, "administer")
        doc = RulesDocument(act.ctx.store)
        before = doc.effective(act.ctx.config).model_dump(mode="json")
        try:
            saved = doc.save(body.rules, user=who.user.name, expect_version=body.expect_version)
        except ValidationError as exc:
            raise act.refuse(422, _errors(exc), outcome="invalid") from None
        except VersionConflict as exc:
            raise act.refuse(409, str(exc)) from None
        record_change(act, "rules", str(saved.version), before, saved.rules.model_dump(mode="json"))
        act.params["version"] = saved.version
        return act.done({"version": saved.version, "updated_at": saved.updated_at, "updated_by": saved.updated_by},
                        count=1, ids=[str(saved.version)])


# -- notifications -------------------------------------------------------------------------------
@router.get("/notify/dead", name="admin.notify.dead", summary="Alerts a webhook did not take (the dead-letter list)", responses=errors(404))
def dead_letters(request: Request, who: Who) -> dict[str, object]:
    with begin(request, who, "admin.notify.dead") as act:
        act.need(Permission.ADMINISTER, "administer")
        prefix = act.ctx.config.notify.dead_letter_prefix.strip("/") + "/"
        records = []
        for info in sorted(act.ctx.store.list(prefix), key=lambda i: i.key)[-500:]:
            try:
                records.append(json.loads(act.ctx.store.get(info.key)))
            except (ValueError, StoreError):
                continue
        return act.done({"count": len(records), "dead_letters": records}, count=len(records))


# -- users ---------------------------------------------------------------------------------------
class UserAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=USER_NAME_PATTERN)
    role: Role
    password: SecretStr
    scope: Scope = Field(default_factory=Scope)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    scope: Scope | None = None
    disabled: bool | None = None
    password: SecretStr | None = None


@router.post("/users", name="admin.user.add", summary="Add a user", responses=errors(404))
def add_user(request: Request, who: Who, body: UserAdd) -> dict[str, object]:
    with begin(request, who, "admin.user.add", {"name": body.name, "role": body.role.value}) as act:
        act.need(Permission.USERS, "manage users")
        try:
            user = act.ctx.users.add(body.name, body.role, body.password.get_secret_value(), body.scope)
        except UserError as exc:
            raise act.refuse(422, str(exc), outcome="invalid") from None
        record_change(act, "user", body.name, None, user.public())
        return act.done(user.public(), count=1, ids=[body.name])


@router.patch("/users/{name}", name="admin.user.patch", summary="Change a user's role, scope, password or state", responses=errors(404))
def patch_user(request: Request, who: Who, name: UserPath, body: UserPatch) -> dict[str, object]:
    with begin(request, who, "admin.user.patch", {"name": name}) as act:
        act.need(Permission.USERS, "manage users")
        users = act.ctx.users
        user = users.get(name)
        if user is None:
            raise act.refuse(404, f"no user {name!r}")
        before = user.public()
        if body.password is not None:
            try:
                user = users.set_password(name, body.password.get_secret_value())
            except UserError as exc:
                raise act.refuse(422, str(exc), outcome="invalid") from None
        update: dict[str, Any] = {k: v for k, v in (("role", body.role), ("scope", body.scope),
                                                   ("disabled", body.disabled)) if v is not None}
        if update:
            user = user.model_copy(update={**update, "epoch": user.epoch + 1})
            users.put(user)
        record_change(act, "user", name, before, user.public())
        return act.done(user.public(), count=1, ids=[name])


@router.delete("/users/{name}", name="admin.user.delete", summary="Remove a user", responses=errors(404))
def delete_user(request: Request, who: Who, name: UserPath) -> dict[str, object]:
    with begin(request, who, "admin.user.delete", {"name": name}) as act:
        act.need(Permission.USERS, "manage users")
        if name == who.user.name:
            raise act.refuse(422, "you cannot remove yourself", outcome="invalid")
        user = act.ctx.users.get(name)
        if user is None or not act.ctx.users.remove(name):
            raise act.refuse(404, f"no user {name!r}")
        record_change(act, "user", name, user.public(), None)
        return act.done({"deleted": name}, count=1, ids=[name])
