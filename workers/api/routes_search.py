"""Search endpoints: plates, vehicles, faces (by uploaded image) and trajectories.

Every endpoint passes the caller's camera scope to the query layer, and every call is audited
(parameters, case, result count and the IDs of what was returned). Face search and both
trajectories need a case reference; operators cannot run face search; auditors search nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from pipeline.search.hits import QueryError
from schemas.plates import is_plate_text, normalise_plate
from workers.api.auth import Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.faces import FaceRefused, QueryFace
from workers.api.ids import (
    IMAGE_SHA256,
    PLATE,
    PLATE_QUERY,
    PLATE_QUERY_NORMALISED,
    CameraFilter,
    CameraId,
    Instant,
)
from workers.api.models import (
    FaceResults,
    PersonResults,
    PlateResults,
    QueryFaceOut,
    TrajectoryOut,
    VehicleResults,
)
from workers.api.present import (
    camera_names,
    check_times,
    face_out,
    ids,
    iso,
    plate_out,
    scope_label,
    sighting_out,
    vehicle_out,
)
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["search"])

Who = Annotated[Principal, Depends(principal)]
Cameras = CameraFilter
Start = Annotated[Instant | None, Query(description="Inclusive start, RFC 3339 with a time zone.")]
End = Annotated[Instant | None, Query(description="Exclusive end, RFC 3339 with a time zone.")]
VehicleType = Literal["car", "van", "bus", "truck", "motorcycle", "bicycle", "other"]
Colour = Literal["white", "black", "grey", "silver", "red", "blue", "green", "yellow", "brown", "unknown"]


def _limit(act: Action, limit: int) -> int:
    return min(limit, act.ctx.api.max_results)


@router.get("/search/plates", response_model=PlateResults, name="search.plates",
            summary="Plate reads by exact text, wildcard (川A*58?) or edit distance", responses=errors())
def search_plates(
    request: Request,
    who: Who,
    q: Annotated[str, Query(min_length=1, max_length=32, pattern=PLATE_QUERY,
                            description="Plate text (letters, digits, Chinese characters; case, spaces and "
                                        "separators such as - . · / are ignored); * and ? are wildcards.")],
    mode: Literal["exact", "wildcard", "fuzzy"] = "exact",
    max_edits: Annotated[int, Query(ge=0, le=3)] = 1,
    camera: Cameras = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
    lookalikes: Annotated[bool, Query(description="mode=exact: also reads that differ only by look-alike "
                                      "characters (0/O/D/Q, 1/I/T, 8/B ...); edits counts them")] = False,
) -> PlateResults:
    params = {"q": q, "mode": mode, "max_edits": max_edits, "camera": camera, "start": iso(start), "end": iso(end),
              "limit": limit, "lookalikes": lookalikes}
    with begin(request, who, "search.plates", params) as act:
        act.need(Permission.SEARCH, "search plates")
        check_times(act, start, end)
        text = normalise_plate(q)
        if not re.fullmatch(PLATE_QUERY_NORMALISED, text):
            msg = "a plate query has letters, digits and Chinese characters only (and * ? with mode=wildcard)"
            raise act.refuse(422, msg, outcome="invalid")
        if mode != "wildcard" and any(c in text for c in "*?"):
            raise act.refuse(422, "'*' and '?' are wildcards: use mode=wildcard", outcome="invalid")
        cams = act.cameras(camera)
        hits = act.ctx.search.plates(text, mode=mode, max_edits=max_edits, cameras=cams, start=start, end=end,
                                     limit=_limit(act, limit), lookalikes=lookalikes)
        names = camera_names(act)
        body = PlateResults(count=len(hits), scope=scope_label(cams), hits=[plate_out(act, h, names) for h in hits])
        return act.done(body, count=len(hits), ids=ids(hits, "read_id"))


@router.get("/search/vehicles", response_model=VehicleResults, name="search.vehicles",
            summary="Vehicle tracks by type, colour, camera and time", responses=errors())
def search_vehicles(
    request: Request,
    who: Who,
    vehicle_type: Annotated[VehicleType | None, Query(alias="type")] = None,
    colour: Colour | None = None,
    camera: Cameras = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> VehicleResults:
    params = {"type": vehicle_type, "colour": colour, "camera": camera, "start": iso(start), "end": iso(end),
              "limit": limit}
    with begin(request, who, "search.vehicles", params) as act:
        act.need(Permission.SEARCH, "search vehicles")
        check_times(act, start, end)
        cams = act.cameras(camera)
        hits = act.ctx.search.vehicles(vehicle_type=vehicle_type, colour=colour, cameras=cams, start=start, end=end,
                                       limit=_limit(act, limit))
        names = camera_names(act)
        body = VehicleResults(count=len(hits), scope=scope_label(cams),
                              hits=[vehicle_out(act, h, names) for h in hits])
        return act.done(body, count=len(hits), ids=[f"{h.track_id}/{h.segment}" for h in hits])


ClothingColour = Literal["white", "black", "grey", "silver", "red", "blue", "green", "yellow", "brown", "unknown",
                         "dark", "light"]


@router.get("/search/persons", response_model=PersonResults, name="search.persons",
            summary="Person tracks by clothing colours (upper and lower body), camera and time", responses=errors())
def search_persons(
    request: Request,
    who: Who,
    upper: Annotated[ClothingColour | None, Query(description="colour of the top; dark = black or grey, "
                                                  "light = white or silver")] = None,
    lower: Annotated[ClothingColour | None, Query(description="colour of the trousers or skirt")] = None,
    camera: Cameras = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> PersonResults:
    params = {"upper": upper, "lower": lower, "camera": camera, "start": iso(start), "end": iso(end), "limit": limit}
    with begin(request, who, "search.persons", params) as act:
        act.need(Permission.SEARCH, "search persons")
        check_times(act, start, end)
        cams = act.cameras(camera)
        hits = act.ctx.search.persons(upper=upper, lower=lower, cameras=cams, start=start, end=end,
                                      limit=_limit(act, limit))
        names = camera_names(act)
        body = PersonResults(count=len(hits), scope=scope_label(cams),
                             hits=[vehicle_out(act, h, names) for h in hits])
        return act.done(body, count=len(hits), ids=[f"{h.track_id}/{h.segment}" for h in hits])


async def _read_upload(act: Action, image: UploadFile | None) -> bytes | None:
    """The uploaded file's bytes (at most ``api.max_upload_bytes``: the body limit already stopped larger
    requests while they streamed in; this bounds the one part)."""
    if image is None:
        return None
    data = await image.read(act.ctx.api.max_upload_bytes + 1)
    if len(data) > act.ctx.api.max_upload_bytes:
        raise act.refuse(413, f"the image is larger than {act.ctx.api.max_upload_bytes} bytes", outcome="invalid")
    return data


def _query_face(act: Action, data: bytes | None, query: str | None) -> QueryFace:
    """Analyse the uploaded image, or the stored query image named by its SHA-256."""
    if data is None and query:
        try:
            data = act.ctx.store.get(f"{act.ctx.audit.prefix}/queries/{query}.jpg")
        except KeyError:
            raise act.refuse(404, "no stored query image with that reference") from None
    if not data:
        raise act.refuse(422, "upload an image of the face ('image')", outcome="invalid")
    try:
        face = act.ctx.faces.analyze(data)
    except FaceRefused as exc:
        raise act.refuse(exc.status, str(exc)) from None
    key = act.ctx.audit.store_query_image(data, ".jpg")
    act.params.update(image_sha256=face.image_sha256, image_key=key, query_quality=face.quality)
    return face


def _query_out(face: QueryFace, threshold: float | None = None) -> QueryFaceOut:
    return QueryFaceOut(quality=face.quality, components=face.components, faces_in_image=face.faces_in_image,
                        model_id=face.model_id, threshold=face.threshold if threshold is None else threshold,
                        image_sha256=face.image_sha256)


FormCameras = Annotated[list[CameraId] | None, Form(description="Narrow to these camera IDs.", max_length=500)]
"""(At most 500: a multipart form carries at most 1000 fields.)"""


@router.post("/search/faces", response_model=FaceResults, name="search.faces",
             summary="Faces most similar to the face in an uploaded image (needs a case reference)",
             responses=errors(400))
async def search_faces(
    request: Request,
    who: Who,
    image: Annotated[UploadFile, File(description="Image showing one face (JPEG, PNG, WebP or BMP).")],
    case: Annotated[str | None, Form(max_length=100)] = None,
    k: Annotated[int, Form(ge=1, le=10_000)] = 20,
    threshold: Annotated[float | None, Form(ge=-1.0, le=1.0)] = None,
    camera: FormCameras = None,
    start: Annotated[Instant | None, Form()] = None,
    end: Annotated[Instant | None, Form()] = None,
) -> FaceResults:
    from starlette.concurrency import run_in_threadpool

    params = {"k": k, "threshold": threshold, "camera": camera, "start": iso(start), "end": iso(end)}
    with begin(request, who, "search.faces", params) as act:
        act.need(Permission.SEARCH_FACES, "run face search")
        act.need_case(case, "face search")
        check_times(act, start, end)
        if k > act.ctx.api.face_max_k:
            raise act.refuse(422, f"k is at most {act.ctx.api.face_max_k}", outcome="invalid")
        data = await _read_upload(act, image)
        return await run_in_threadpool(_run_face_search, act, data, k, threshold, camera, start, end)


def _run_face_search(act: Action, data: bytes | None, k: int, threshold: float | None, camera: list[str] | None,
                     start: datetime | None, end: datetime | None) -> FaceResults:
    with act:
        face = _query_face(act, data, None)
        cams = act.cameras(camera)
        hits = act.ctx.search.faces(face.embedding, model_id=face.model_id, k=k, threshold=threshold, cameras=cams,
                                    start=start, end=end)
        names = camera_names(act)
        used = face.threshold if threshold is None else threshold
        body = FaceResults(count=len(hits), scope=scope_label(cams), query=_query_out(face, used),
                           hits=[face_out(act, h, names, used) for h in hits])
        return act.done(body, count=len(hits), ids=ids(hits, "face_id"))


@router.get("/trajectory/plate", response_model=TrajectoryOut, name="trajectory.plate",
            summary="Every sighting of one plate, in time order, with camera positions (needs a case reference)",
            responses=errors(400))
def plate_trajectory(
    request: Request,
    who: Who,
    plate: Annotated[str, Query(min_length=1, max_length=32, pattern=PLATE,
                                description="The exact plate text (case, spaces and separators ignored).")],
    case: Annotated[str | None, Query(max_length=100)] = None,
    camera: Cameras = None,
    start: Start = None,
    end: End = None,
) -> TrajectoryOut:
    params = {"plate": plate, "camera": camera, "start": iso(start), "end": iso(end)}
    with begin(request, who, "trajectory.plate", params) as act:
        act.need(Permission.TRAJECTORY, "follow trajectories")
        act.need_case(case, "a trajectory")
        check_times(act, start, end)
        text = normalise_plate(plate)
        if not is_plate_text(text):
            raise act.refuse(422, "a plate has letters, digits and Chinese characters only", outcome="invalid")
        cams = act.cameras(camera)
        sightings = act.ctx.search.plate_trajectory(text, cameras=cams, start=start, end=end)
        body = TrajectoryOut(count=len(sightings), scope=scope_label(cams), subject=text,
                             sightings=[sighting_out(act, s) for s in sightings])
        return act.done(body, count=len(sightings), ids=ids(sightings, "id"))


@router.post("/trajectory/face", response_model=TrajectoryOut, name="trajectory.face",
             summary="Sightings of the person in an uploaded image (or an earlier query), in time order",
             responses=errors(400, 404))
async def face_trajectory(
    request: Request,
    who: Who,
    image: Annotated[UploadFile | None, File()] = None,
    query: Annotated[str | None, Form(pattern=IMAGE_SHA256, description="image_sha256 of an earlier face search.")] = None,
    case: Annotated[str | None, Form(max_length=100)] = None,
    threshold: Annotated[float | None, Form(ge=-1.0, le=1.0)] = None,
    camera: FormCameras = None,
    start: Annotated[Instant | None, Form()] = None,
    end: Annotated[Instant | None, Form()] = None,
) -> TrajectoryOut:
    from starlette.concurrency import run_in_threadpool

    params = {"threshold": threshold, "camera": camera, "start": iso(start), "end": iso(end), "query": query}
    with begin(request, who, "trajectory.face", params) as act:
        act.need(Permission.SEARCH_FACES, "run face search")
        act.need(Permission.TRAJECTORY, "follow trajectories")
        act.need_case(case, "a face trajectory")
        check_times(act, start, end)
        data = await _read_upload(act, image)
        return await run_in_threadpool(_run_face_trajectory, act, data, query, threshold, camera, start, end)


def _run_face_trajectory(act: Action, data: bytes | None, query: str | None, threshold: float | None,
                         camera: list[str] | None, start: datetime | None, end: datetime | None) -> TrajectoryOut:
    with act:
        face = _query_face(act, data, query)
        cams = act.cameras(camera)
        used = face.threshold if threshold is None else threshold
        sightings = act.ctx.search.face_trajectory(face.embedding, model_id=face.model_id, threshold=used,
                                                   cameras=cams, start=start, end=end)
        body = TrajectoryOut(count=len(sightings), scope=scope_label(cams), subject=f"face:{face.image_sha256}",
                             sightings=[sighting_out(act, s) for s in sightings], query=_query_out(face, used))
        return act.done(body, count=len(sightings), ids=ids(sightings, "id"))


__all__ = ["QueryError", "router"]
