"""Evidence packages over the API: build one from a case's items, list a case's packages, download one.

Building needs export rights and an open case the caller is a member of (lead or investigator). Before any
file is cut an ``evidence.request`` entry is written to the audit log; its ID goes into the manifest with the
save entries of the items, and the ``evidence.build`` entry then names the stored package and its SHA-256.
Packages are stored at ``{evidence_prefix}/{case}/{package_id}.zip`` with a record beside them; a download is
audited like every export (``evidence.download``) and needs the same open-case membership.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from pipeline.cases.builder import PackageBuilder, PackageRequest
from pipeline.cases.workspace import ITEM_ID
from pipeline.store.base import ObjectNotFound
from workers.api import cache
from workers.api.auth import Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.routes_cases import NumberPath, visible, workable
from workers.api.routes_media import need_export_quota
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["cases"])
Who = Annotated[Principal, Depends(principal)]
PACKAGE_ID = r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{12}$"
OBJECT = r"^([0-9]{8}T[0-9]{6}-[0-9a-f]{8}/)?(face|plate):[0-9]{1,6}$"
PackagePath = Annotated[str, PathParam(pattern=PACKAGE_ID, description="An evidence package ID.")]


class RedactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faces: bool = Field(True, description="Blur faces of bystanders (faces not on the keep list).")
    plates: bool = Field(True, description="Blur plates not named in the case.")
    keep: list[Annotated[str, Field(pattern=OBJECT)]] = Field(
        default_factory=list, max_length=500,
        description="Objects of the preview to leave clear: 'ITEM/face:3' (one item's clip) or 'face:3' (every item).")
    blur: list[Annotated[str, Field(pattern=OBJECT)]] = Field(
        default_factory=list, max_length=500, description="Objects to blur even if they would be kept (a named plate).")


class PackageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Annotated[str, Field(pattern=ITEM_ID)]] = Field(
        default_factory=list, max_length=10_000, description="Items to include (default: every item of the case).")
    reason: str = Field(min_length=1, max_length=1000, description="Why the package is made (and for whom).")
    redact: RedactIn | None = Field(None, description="Blur bystanders on the exported copies.")


class PackageOut(BaseModel):
    package_id: str
    case: str
    url: str
    key: str
    sha256: str
    bytes: int
    files: int
    requested_by: str
    created_at: datetime
    reason: str
    redacted: bool
    signing_key: str
    fingerprint: str
    skipped: list[str]
    audit_entries: list[str]


class PackageList(BaseModel):
    count: int
    packages: list[PackageOut]


def _record_key(act: Action, number: str, package_id: str, suffix: str) -> str:
    return f"{act.ctx.config.cases.evidence_prefix}/{number}/{package_id}{suffix}"


def package_builder(act: Action) -> PackageBuilder:
    cfg = act.ctx.config.cases
    return PackageBuilder(act.ctx.store, act.ctx.evidence_keys, cameras=act.ctx.directory.cameras,
                          timezone=cfg.timezone, recordings_prefix=act.ctx.recordings_prefix,
                          pad_s=act.ctx.api.clip_before_s, max_bytes=cfg.package_max_bytes)


@router.post("/cases/{number}/packages", response_model=PackageOut, name="evidence.build",
             summary="Build a signed evidence package of the case's items", responses=errors(404, 429))
async def build(request: Request, who: Who, number: NumberPath, body: PackageIn) -> PackageOut:
    params = {"number": number, "items": body.items, "reason": body.reason,
              "redact": body.redact.model_dump() if body.redact else None}
    act = begin(request, who, "evidence.build", params)
    return await run_in_threadpool(_build, act, number, body)


def _build(act: Action, number: str, body: PackageIn) -> PackageOut:
    with act:
        act.need(Permission.EXPORT, "build evidence packages")
        case = workable(act, number)
        items = act.ctx.workspace.items(number)
        if body.items:
            wanted = set(body.items)
            items = [i for i in items if i.item_id in wanted]
            if len(items) != len(wanted):
                raise act.refuse(404, f"not every item named is in case {number}")
        allowed = act.cameras()
        items = [i for i in items if not i.camera_id or allowed is None or i.camera_id in allowed]
        if not items:
            raise act.refuse(422, "the package would be empty (no item of the case in your scope)", outcome="invalid")
        if len(items) > act.ctx.config.cases.package_max_items:
            raise act.refuse(422, f"at most {act.ctx.config.cases.package_max_items} items per package",
                             outcome="invalid")
        need_export_quota(act)
        request = Action(act.ctx, act.who, "evidence.request", {**act.params, "items": [i.item_id for i in items]},
                         case=number)
        request.record("ok", 202, reason="building")
        assert request.entry is not None
        audit_ids = [f"{request.entry['writer']}:{request.entry['seq']}", *(i.audit_id for i in items if i.audit_id)]
        req = PackageRequest(case=case, items=items, requested_by=act.who.user.name, role=act.who.user.role.value,
                             reason=body.reason, audit_entries=audit_ids)
        redactor = _redactor(act, case, items, body.redact) if body.redact else None
        work = Path(act.ctx.api.cache_dir) / "evidence"
        try:
            result = package_builder(act).build(req, work, redactor)
        except ValueError as exc:
            raise act.refuse(413, str(exc)) from None
        key = _record_key(act, number, req.package_id, ".zip")
        act.ctx.store.put(key, result.path, content_type="application/zip",
                          metadata={"case": number, "sha256": result.sha256})
        out = PackageOut(package_id=req.package_id, case=number, url=f"/api/cases/{number}/packages/{req.package_id}"
                         "/package.zip", key=key, sha256=result.sha256, bytes=result.bytes,
                         files=len(result.manifest["files"]), requested_by=act.who.user.name,
                         created_at=result.manifest["created_at"], reason=body.reason, redacted=redactor is not None,
                         signing_key=result.manifest["signing"]["key_id"],
                         fingerprint=result.manifest["signing"]["fingerprint"], skipped=result.skipped,
                         audit_entries=audit_ids)
        act.ctx.store.put(_record_key(act, number, req.package_id, ".json"), out.model_dump_json(indent=1).encode(),
                          content_type="application/json")
        act.ctx.quotas.export_made(act.who.user.name)
        shutil.rmtree(work / req.package_id, ignore_errors=True)
        cache.trim(Path(act.ctx.api.cache_dir), act.ctx.api.cache_max_mb * 1_000_000, keep=result.path)
        act.params.update(package_id=req.package_id, sha256=result.sha256)
        return act.done(out, count=len(items), ids=[i.item_id for i in items], exported=[key])


def _redactor(act: Action, case: Any, items: list[Any], redact: RedactIn) -> Any:
    from workers.api.redact import redactor_for

    return redactor_for(act.ctx, case, items, faces=redact.faces, plates=redact.plates, keep=redact.keep,
                        blur=redact.blur)


def _load(act: Action, number: str, package_id: str) -> PackageOut | None:
    try:
        data = act.ctx.store.get(_record_key(act, number, package_id, ".json"), length=1 << 20)
        return PackageOut.model_validate(json.loads(data))
    except (ObjectNotFound, ValueError):
        return None


@router.get("/cases/{number}/packages", response_model=PackageList, name="evidence.list",
            summary="The case's evidence packages, newest first", responses=errors(404))
def list_packages(request: Request, who: Who, number: NumberPath) -> PackageList:
    with begin(request, who, "evidence.list", {"number": number}) as act:
        act.need(Permission.CASES, "read cases")
        visible(act, number)
        prefix = f"{act.ctx.config.cases.evidence_prefix}/{number}/"
        found = []
        for info in act.ctx.store.list(prefix):
            if info.key.endswith(".json"):
                rec = _load(act, number, info.key[len(prefix):-5])
                if rec is not None:
                    found.append(rec)
        found.sort(key=lambda p: p.created_at, reverse=True)
        return act.done(PackageList(count=len(found), packages=found), count=len(found),
                        ids=[p.package_id for p in found])


@router.get("/cases/{number}/packages/{package_id}/package.zip", name="evidence.download",
            response_class=FileResponse, summary="Download an evidence package (audited)",
            responses={200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The package."}, **errors(404)})
def download(request: Request, who: Who, number: NumberPath, package_id: PackagePath) -> Response:
    with begin(request, who, "evidence.download", {"number": number, "package_id": package_id}) as act:
        act.need(Permission.EXPORT, "download evidence packages")
        workable(act, number)
        rec = _load(act, number, package_id)
        if rec is None:
            raise act.refuse(404, f"no package {package_id} of case {number}")
        local = cache.fetch(act.ctx.store, rec.key, Path(act.ctx.api.cache_dir) / "evidence" / f"{package_id}.zip",
                            root=Path(act.ctx.api.cache_dir), max_bytes=act.ctx.api.cache_max_mb * 1_000_000)
        act.params.update(sha256=rec.sha256)
        act.done(None, count=1, ids=[package_id], exported=[rec.key])
    return FileResponse(local, media_type="application/zip", filename=f"{number}-{package_id}.zip",
                        headers={"Cache-Control": "private, no-store"})


class PreviewIn(RedactIn):
    item_id: str = Field(pattern=ITEM_ID, description="The item whose clip is previewed.")
    at_s: float | None = Field(None, ge=0.0, le=7200.0, description="Seconds into the clip (default: the item's "
                               "moment).")


class PreviewOut(BaseModel):
    image: str = Field(description="The frame as a data: URL (JPEG), objects outlined and numbered.")
    at_s: float
    objects: list[dict[str, Any]] = Field(description="label, text, blurred, in_frame for every object seen so far.")


@router.post("/cases/{number}/redaction/preview", response_model=PreviewOut, name="evidence.preview",
             summary="Preview redaction of one item's clip: the frame with each object numbered", responses=errors(404))
async def redaction_preview(request: Request, who: Who, number: NumberPath, body: PreviewIn) -> PreviewOut:
    act = begin(request, who, "evidence.preview", {"number": number, **body.model_dump()})
    return await run_in_threadpool(_preview, act, number, body)


def _preview(act: Action, number: str, body: PreviewIn) -> PreviewOut:
    import base64

    from workers.api.redact import preview, redactor_for

    with act:
        act.need(Permission.EXPORT, "redact exports")
        case = workable(act, number)
        item = act.ctx.workspace.get(number, body.item_id)
        allowed = act.cameras()
        if item is None or not item.camera_id or (allowed is not None and item.camera_id not in allowed):
            raise act.refuse(404, f"no item {body.item_id} with video in case {number}")
        work = Path(act.ctx.api.cache_dir) / "evidence" / "preview"
        try:
            clip, start = package_builder(act).clip_of(item, work)
        except LookupError as exc:
            raise act.refuse(404, str(exc)) from None
        redactor = redactor_for(act.ctx, case, [item], faces=body.faces, plates=body.plates, keep=body.keep,
                                blur=body.blur)
        at = body.at_s if body.at_s is not None else max(0.0, (item.time - start).total_seconds()) \
            if item.time and start else 0.0
        try:
            jpeg, objects = preview(redactor.redaction(item), clip, at)
        finally:
            clip.unlink(missing_ok=True)
        out = PreviewOut(image="data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), at_s=at, objects=objects)
        return act.done(out, count=len(objects), ids=[o["label"] for o in objects])
