"""Enhancement of evidence frames over the API (模糊图像处理): the frame at a case item's moment (optionally a
region of it) goes through the asked operations (:mod:`pipeline.cases.enhance`; super-resolution with SPAN ×4
from the model zoo), and the original and the enhanced copy are both stored in the case with the operation log
— a new ``frame`` item, marked enhanced, shown side by side in the UI and included in evidence packages. The
original recording and crop are never changed. Needs an open case (lead or investigator); audited.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from pipeline.cases.builder import frames_around, grab_frame
from pipeline.cases.enhance import OPERATIONS, EnhanceError, apply, check, crop
from pipeline.cases.workspace import ITEM_ID, CaseItem, new_item_id
from workers.api.auth import Action, Principal, begin, principal
from workers.api.case_items import ItemOut, item_out
from workers.api.contract import errors
from workers.api.present import camera_names
from workers.api.routes_cases import NumberPath, workable
from workers.api.routes_evidence import package_builder
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["cases"])
Who = Annotated[Principal, Depends(principal)]
_SR_LOCK = threading.Lock()
_SR: dict[str, Any] = {}


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: str = Field(pattern="^(" + "|".join(OPERATIONS) + ")$")
    params: dict[str, float] = Field(default_factory=dict, max_length=4)


class EnhanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ITEM_ID, description="The item whose moment is enhanced.")
    at_s: float | None = Field(None, ge=0.0, le=7200.0, description="Seconds into its clip (default: its moment).")
    region: list[float] | None = Field(None, min_length=4, max_length=4,
                                       description="x1, y1, x2, y2 in frame pixels (a plate, a face).")
    operations: list[Operation] = Field(min_length=1, max_length=8)
    note: str = Field("", max_length=1000)


def _upscaler(act: Action) -> tuple[Any, str]:
    with _SR_LOCK:
        if "model" not in _SR:
            try:
                from models.zoo import ModelZoo

                _SR["model"] = ModelZoo(act.ctx.config.models).super_resolver()
            except Exception:  # not installed here: the other operations still work
                _SR["model"] = None
    model = _SR["model"]
    return (model.upscale, model.model_id) if model is not None else (None, "")


@router.post("/cases/{number}/frames", response_model=ItemOut, name="evidence.enhance",
             summary="Enhance the frame at an item's moment into a new case item (original kept)",
             responses=errors(404))
async def enhance(request: Request, who: Who, number: NumberPath, body: EnhanceIn) -> ItemOut:
    act = begin(request, who, "evidence.enhance", {"number": number, **body.model_dump()})
    return await run_in_threadpool(_enhance, act, number, body)


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def _frames(act: Action, item: CaseItem, at_s: float | None, count: int) -> tuple[np.ndarray, list[np.ndarray], float]:
    work = Path(act.ctx.api.cache_dir) / "evidence" / "enhance"
    try:
        clip, start = package_builder(act).clip_of(item, work)
    except LookupError as exc:
        raise act.refuse(404, str(exc)) from None
    try:
        at = at_s if at_s is not None else max(0.0, (item.time - start).total_seconds()) if item.time and start \
            else 0.0
        frame = grab_frame(clip, at)
        neighbours = frames_around(clip, at, count) if count > 1 else []
    finally:
        clip.unlink(missing_ok=True)
    if frame is None:
        raise act.refuse(404, "the clip has no frame at that moment")
    return frame, neighbours, at


def _enhance(act: Action, number: str, body: EnhanceIn) -> ItemOut:
    with act:
        act.need(Permission.EXPORT, "enhance evidence frames")
        workable(act, number)
        source = act.ctx.workspace.get(number, body.item_id)
        allowed = act.cameras()
        if source is None or not source.camera_id or (allowed is not None and source.camera_id not in allowed):
            raise act.refuse(404, f"no item {body.item_id} with video in case {number}")
        try:
            steps = [check(o.op, o.params) for o in body.operations]
        except EnhanceError as exc:
            raise act.refuse(422, str(exc), outcome="invalid") from None
        multi = max((int(s.params["frames"]) for s in steps if s.op == "denoise_multi"), default=1)
        frame, neighbours, at = _frames(act, source, body.at_s, multi)
        upscale, model_id = _upscaler(act) if any(s.op == "superres" for s in steps) else (None, "")
        try:
            original = crop(frame, body.region)
            near = [crop(f, body.region) for f in neighbours]
            enhanced, log = apply(original, steps, neighbours=near, upscaler=upscale, upscaler_id=model_id)
        except (EnhanceError, ValueError) as exc:
            raise act.refuse(422, str(exc), outcome="invalid") from None
        item = _store(act, number, source, original, enhanced, log, at, body)
        return item_out(act, item, camera_names(act))


def _store(act: Action, number: str, source: CaseItem, original: np.ndarray, enhanced: np.ndarray,
           log: list[dict[str, Any]], at: float, body: EnhanceIn) -> CaseItem:
    item_id = new_item_id()
    base = f"{act.ctx.config.cases.prefix}/frames/{number}/{item_id}"
    orig_png, enh_png = _png(original), _png(enhanced)
    keys = {"original": f"{base}-original.png", "enhanced": f"{base}-enhanced.png", "source": source.item_id}
    act.ctx.store.put(keys["original"], orig_png, content_type="image/png")
    act.ctx.store.put(keys["enhanced"], enh_png, content_type="image/png")
    details = {"keys": keys, "operations": log, "at_s": round(at, 3), "region": body.region,
               "original_sha256": hashlib.sha256(orig_png).hexdigest(),
               "enhanced_sha256": hashlib.sha256(enh_png).hexdigest(), "enhanced": True,
               "camera_name": source.details.get("camera_name", source.camera_id)}
    text = "enhanced: " + " → ".join(str(e["op"]) for e in log)
    item = CaseItem(item_id=item_id, case=number, kind="frame", ref=source.item_id, camera_id=source.camera_id,
                    time=source.time, track_id=source.track_id, text=text[:200], note=body.note,
                    media_keys=(keys["original"], keys["enhanced"]), sha256=details["enhanced_sha256"],
                    lat=source.lat, lon=source.lon, details=details, added_by=act.who.user.name,
                    added_at=source.added_at.__class__.now(source.added_at.tzinfo))
    act.params.update(item_id=item_id, original_key=keys["original"], enhanced_key=keys["enhanced"])
    act.record("ok", 200, result_count=1, result_ids=[item_id], exported_keys=[keys["enhanced"]])
    assert act.entry is not None
    item = item.model_copy(update={"audit_id": f"{act.entry['writer']}:{act.entry['seq']}"})
    return act.ctx.workspace.put(item)
