"""Plate hotlists for admins: list, read, create/replace (with a version check) and delete the lists the plate
worker matches reads against — the same store objects ``tubeline hotlists`` writes (:mod:`pipeline.hotlists`).

* ``GET /api/admin/hotlists`` — every list: those in the store (editable) and those from ``hotlists.files``
  (read-only here; edited in their files).
* ``GET /api/admin/hotlists/{name}`` — one list with its entries.
* ``PUT /api/admin/hotlists/{name}`` ``{expect_version, reason, owner, severity, entries}`` — create (``expect_version``
  0) or replace the list; every plate goes through the shared normaliser and is refused (422, naming the entry)
  when it is not plate text; 409 when someone saved the list since the editor loaded it.
* ``DELETE /api/admin/hotlists/{name}?expect_version=`` — remove a stored list.

The plate worker re-reads the store every ``hotlists.refresh_s``: changes apply without a restart. Each change
writes a change record (who, when, plates added and removed) and an audit entry naming it. Needs ``administer``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.hotlists import LIST_NAME_PATTERN, Hotlist, HotlistError, HotlistRepository, Severity, load_file
from pipeline.rulesdoc import VersionConflict
from pipeline.store.base import ObjectNotFound
from workers.api.auth import Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.ids import Instant
from workers.api.routes_manage import record_change
from workers.api.users import Permission

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin/hotlists", tags=["administration"])
Who = Annotated[Principal, Depends(principal)]
ListPath = Annotated[str, Path(pattern=LIST_NAME_PATTERN, description="The list's name (1-64 of A-Z a-z 0-9 _.:-).")]
MAX_ENTRIES = 100_000
CHANGE_PLATES = 1000


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: str = Field(min_length=1, max_length=64, description="Plate text as typed; normalised on save.")
    note: str = Field("", max_length=500, description="Why this plate is listed (case number, ...).")
    expires_at: Instant | None = Field(None, description="After this time (with zone) the entry no longer matches.")


class HotlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expect_version: int = Field(ge=0, le=2**31, description="The version the editor loaded; 0 for a new list.")
    reason: str = Field("", max_length=500)
    owner: str = Field("", max_length=200)
    severity: Severity = "high"
    entries: list[EntryIn] = Field(default_factory=list, max_length=MAX_ENTRIES)


class EntryOut(BaseModel):
    plate: str
    note: str
    expires_at: datetime | None = None
    expired: bool = False


class HotlistSummary(BaseModel):
    name: str
    source: Literal["store", "file"] = Field(description="store: editable here; file: from hotlists.files.")
    plates: int
    severity: str
    owner: str
    reason: str
    version: int
    updated_at: datetime | None = None
    updated_by: str = ""


class HotlistOut(HotlistSummary):
    entries: list[EntryOut]


class HotlistIndex(BaseModel):
    lists: list[HotlistSummary]
    refresh_s: float = Field(description="The plate worker picks a change up within this many seconds.")
    problems: list[str] = Field(description="Hotlist files that could not be read.")


def _repository(act: Action) -> HotlistRepository:
    return HotlistRepository(act.ctx.store, act.ctx.config.hotlists.store_prefix)


def _summary(hotlist: Hotlist, source: Literal["store", "file"]) -> HotlistSummary:
    return HotlistSummary(name=hotlist.name, source=source, plates=len(hotlist.entries), severity=hotlist.severity,
                          owner=hotlist.owner, reason=hotlist.reason, version=hotlist.version,
                          updated_at=hotlist.updated_at, updated_by=hotlist.updated_by)


def _out(hotlist: Hotlist, source: Literal["store", "file"]) -> HotlistOut:
    now = datetime.now(UTC)
    entries = [EntryOut(plate=e.plate, note=e.note, expires_at=e.expires_at, expired=e.expired(now))
               for e in hotlist.entries]
    return HotlistOut(**_summary(hotlist, source).model_dump(), entries=entries)


def _file_lists(act: Action) -> tuple[dict[str, Hotlist], list[str]]:
    lists: dict[str, Hotlist] = {}
    problems: list[str] = []
    for path in act.ctx.config.hotlists.files:
        try:
            lists.update((h.name, h) for h in load_file(FilePath(path)))
        except HotlistError as exc:
            problems.append(str(exc)[:300])
    return lists, problems


def _stored(act: Action, repo: HotlistRepository, name: str) -> Hotlist | None:
    try:
        return repo.find(name)
    except HotlistError as exc:
        raise act.refuse(503, f"the stored list is unreadable: {exc}"[:300], outcome="failed") from None


@router.get("", response_model=HotlistIndex, name="admin.hotlists", summary="Every plate hotlist (store and files)",
            responses=errors())
def list_hotlists(request: Request, who: Who) -> HotlistIndex:
    with begin(request, who, "admin.hotlists") as act:
        act.need(Permission.ADMINISTER, "administer")
        repo = _repository(act)
        files, problems = _file_lists(act)
        out: dict[str, HotlistSummary] = {n: _summary(h, "file") for n, h in files.items()}
        for name in repo.names():
            try:
                out[name] = _summary(repo.get(name), "store")  # the store wins, as in the plate worker
            except (HotlistError, ObjectNotFound) as exc:
                problems.append(f"{name}: {exc}"[:300])
        body = HotlistIndex(lists=sorted(out.values(), key=lambda s: s.name),
                            refresh_s=act.ctx.config.hotlists.refresh_s, problems=problems)
        return act.done(body, count=len(out), ids=sorted(out))


@router.get("/{name}", response_model=HotlistOut, name="admin.hotlist", summary="One hotlist with its entries",
            responses=errors(404))
def get_hotlist(request: Request, who: Who, name: ListPath) -> HotlistOut:
    with begin(request, who, "admin.hotlist", {"name": name}) as act:
        act.need(Permission.ADMINISTER, "administer")
        stored = _stored(act, _repository(act), name)
        if stored is not None:
            return act.done(_out(stored, "store"), count=len(stored.entries), ids=[name])
        files, _ = _file_lists(act)
        if name in files:
            return act.done(_out(files[name], "file"), count=len(files[name].entries), ids=[name])
        raise act.refuse(404, f"no hotlist {name!r}")


def _validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "list"
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def _change(before: Hotlist | None, after: Hotlist | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Change-record bodies: list metadata and the plates added/removed (at most CHANGE_PLATES each)."""
    old = {e.plate for e in before.entries} if before else set()
    new = {e.plate for e in after.entries} if after else set()

    def meta(h: Hotlist | None) -> dict[str, Any] | None:
        return None if h is None else {"version": h.version, "plates": len(h.entries), "reason": h.reason,
                                       "owner": h.owner, "severity": h.severity}

    after_meta = meta(after)
    if after_meta is not None:
        after_meta["added"] = sorted(new - old)[:CHANGE_PLATES]
        after_meta["removed"] = sorted(old - new)[:CHANGE_PLATES]
    return meta(before), after_meta


@router.put("/{name}", response_model=HotlistOut, name="admin.hotlist.put",
            summary="Create or replace a hotlist (validated; refused when it changed since it was loaded)",
            responses=errors(404, 409))
def put_hotlist(request: Request, who: Who, name: ListPath, body: HotlistIn) -> HotlistOut:
    params = {"name": name, "expect_version": body.expect_version, "entries": len(body.entries)}
    with begin(request, who, "admin.hotlist.put", params) as act:
        act.need(Permission.ADMINISTER, "administer")
        repo = _repository(act)
        try:
            hotlist = Hotlist.model_validate({"name": name, **body.model_dump(exclude={"expect_version"})})
        except ValidationError as exc:
            raise act.refuse(422, _validation(exc), outcome="invalid") from None
        before = _stored(act, repo, name)
        try:
            saved = repo.save(hotlist, user=act.who.user.name, expect_version=body.expect_version)
        except VersionConflict as exc:
            raise act.refuse(409, str(exc)) from None
        record_change(act, "hotlist", name, *_change(before, saved))
        log.info("hotlist %s version %d saved by %s (%d plates)", name, saved.version, act.who.user.name,
                 len(saved.entries))
        return act.done(_out(saved, "store"), count=len(saved.entries), ids=[name])


@router.delete("/{name}", name="admin.hotlist.delete", summary="Remove a stored hotlist", responses=errors(404, 409))
def delete_hotlist(request: Request, who: Who, name: ListPath,
                   expect_version: Annotated[int | None, Query(ge=0, le=2**31,
                                                               description="Refuse (409) unless still this version.")]
                   = None) -> dict[str, object]:
    with begin(request, who, "admin.hotlist.delete", {"name": name, "expect_version": expect_version}) as act:
        act.need(Permission.ADMINISTER, "administer")
        repo = _repository(act)
        before = _stored(act, repo, name)
        if before is None:
            raise act.refuse(404, f"no stored hotlist {name!r} (lists from files are removed in their files)")
        if expect_version is not None and before.version != expect_version:
            raise act.refuse(409, f"hotlist {name!r} changed since you opened it (version {before.version}); reload")
        repo.delete(name)
        record_change(act, "hotlist", name, *_change(before, None))
        return act.done({"name": name, "deleted": True}, count=1, ids=[name])
