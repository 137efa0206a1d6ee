"""The case register and workspace over the API: open, list, read, manage members, close and reopen cases; save
hits, clips, synopsis moments and notes into them; the timeline and a search inside and across cases.

Who may do what (every call audited, refusals included):

* opening a case, listing one's cases, reading a case: ``cases`` permission (admins, investigators); a case is
  visible to its members and to admins — to anyone else it does not exist (404, whether it does or not);
* members, close, reopen: the case's leads and admins;
* saving into a case and removing items: members with a lead or investigator role while the case is open (the
  same check face search and exports make); viewers read;
* items of a confirmed linked case are shown to users who are members of both (:mod:`workers.api.routes_links`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from pipeline.cases.records import CASE_TYPES, Case, CaseError, CaseRefused, MemberRole, can_manage
from pipeline.cases.workspace import ITEM_ID, CaseItem, search_items
from workers.api.auth import Action, Principal, begin, principal
from workers.api.case_items import ItemIn, ItemOut, item_out, resolve
from workers.api.contract import errors
from workers.api.present import camera_names
from workers.api.users import USER_NAME_PATTERN, Permission, Role

router = APIRouter(prefix="/api", tags=["cases"])
Who = Annotated[Principal, Depends(principal)]
CASE_NUMBER = r"^[A-Z0-9]{1,16}(-[A-Z0-9]{1,16}){0,7}$"
NumberPath = Annotated[str, Path(pattern=CASE_NUMBER, description="The case number (its reference).")]
ItemPath = Annotated[str, Path(pattern=ITEM_ID, description="An item of the case.")]
Role_ = Literal["lead", "investigator", "viewer"]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=USER_NAME_PATTERN)
    role: Role_ | None = Field(None, description="lead, investigator or viewer; null removes the member.")


class CaseIn(BaseModel):
    """A new case. The caller becomes its owner and lead."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(max_length=100, description="The case reference (must match api.case_pattern).")
    title: str = Field(min_length=1, max_length=200)
    case_type: Literal["criminal", "administrative", "traffic", "missing-person", "public-order", "other"]
    unit: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$",
                      description="The unit handling the case (GB/T 2260 code or unit path).")
    legal_basis: str = Field(min_length=1, max_length=500, description="The legal basis for processing.")
    purpose: str = Field(min_length=1, max_length=1000, description="What the case's searches are for.")
    members: list[MemberIn] = Field(default_factory=list, max_length=200)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


class MemberOut(BaseModel):
    user: str
    role: str
    added_at: datetime
    added_by: str


class CaseOut(BaseModel):
    number: str
    title: str
    case_type: str
    unit: str
    legal_basis: str
    purpose: str
    status: Literal["open", "closed"]
    owner: str
    members: list[MemberOut]
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str
    revision: int
    history: list[dict[str, str]]
    my_role: str | None = Field(None, description="The caller's role in the case (None for admins who are not members).")
    items: int | None = Field(None, description="Number of items (in a case's detail).")


class CaseList(BaseModel):
    count: int
    cases: list[CaseOut]


class ItemList(BaseModel):
    count: int
    case: str
    items: list[ItemOut]


class CaseSearchOut(BaseModel):
    count: int
    items: list[ItemOut]


def case_out(case: Case, user: str, items: int | None = None) -> CaseOut:
    member = case.member(user)
    return CaseOut(**case.public(), my_role=member.role.value if member else None, items=items)


def visible(act: Action, number: str) -> Case:
    """The case when the caller is a member or an admin; 404 otherwise (existence not confirmed)."""
    act.case = number
    case = act.ctx.cases.get(number)
    if case is None or (case.member(act.who.user.name) is None and act.who.user.role is not Role.ADMIN):
        raise act.refuse(404, f"no case {number!r} of which you are a member")
    return case


def workable(act: Action, number: str) -> Case:
    """The open case with the caller as a lead or investigator (403 with the reason otherwise)."""
    visible(act, number)
    try:
        return act.ctx.cases.require(number, act.who.user.name)
    except CaseRefused as exc:
        raise act.refuse(403, str(exc)) from None


def _managed(act: Action, number: str) -> Case:
    case = visible(act, number)
    if not can_manage(case, act.who.user.name, act.who.user.role is Role.ADMIN):
        raise act.refuse(403, f"only the leads of case {number} and admins manage it")
    return case


def _changed(act: Action, change: object) -> Case:
    """Run a register change, turning its CaseError into an audited refusal."""
    try:
        return change()  # type: ignore[operator]
    except CaseError as exc:
        raise act.refuse(exc.status, str(exc), outcome="invalid" if exc.status == 422 else "refused") from None


@router.get("/cases", response_model=CaseList, name="cases.list", summary="The cases you are a member of",
            responses=errors())
def list_cases(request: Request, who: Who, status: Literal["open", "closed"] | None = None,
               everyone: Annotated[bool, Query(description="Admins: every case, not only their own.")] = False,
               ) -> CaseList:
    with begin(request, who, "cases.list", {"status": status, "all": everyone}) as act:
        act.need(Permission.CASES, "work with cases")
        mine = [c for c in act.ctx.cases.list() if c.member(who.user.name) is not None
                or (everyone and who.user.role is Role.ADMIN)]
        mine = [c for c in mine if status is None or c.status.value == status]
        body = CaseList(count=len(mine), cases=[case_out(c, who.user.name) for c in mine])
        return act.done(body, count=len(mine), ids=[c.number for c in mine])


@router.post("/cases", response_model=CaseOut, name="cases.open", summary="Open a case (you become its lead)",
             responses=errors(409))
def open_case(request: Request, who: Who, body: CaseIn) -> CaseOut:
    params = {"number": body.number, "title": body.title, "case_type": body.case_type, "unit": body.unit,
              "members": [m.model_dump() for m in body.members]}
    with begin(request, who, "cases.open", params) as act:
        act.need(Permission.CASES, "open cases")
        act.case = body.number
        if not act.ctx.case_re.fullmatch(body.number):
            raise act.refuse(422, f"case number {body.number!r} does not match {act.ctx.case_re.pattern}",
                             outcome="invalid")
        unknown = [m.user for m in body.members if act.ctx.users.get(m.user) is None]
        if unknown:
            raise act.refuse(422, f"no such user: {', '.join(unknown)}", outcome="invalid")
        members = {m.user: MemberRole(m.role or "investigator") for m in body.members}
        case = _changed(act, lambda: act.ctx.cases.open(
            number=body.number, title=body.title, case_type=body.case_type, unit=body.unit,
            legal_basis=body.legal_basis, purpose=body.purpose, owner=who.user.name, members=members))
        return act.done(case_out(case, who.user.name, 0), count=1, ids=[case.number])


@router.get("/cases/search", response_model=CaseSearchOut, name="cases.search",
            summary="Search the items of every case you are a member of", responses=errors())
def search_cases(request: Request, who: Who,
                 q: Annotated[str, Query(min_length=1, max_length=200, description="Words every item must contain.")],
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> CaseSearchOut:
    with begin(request, who, "cases.search", {"q": q, "limit": limit}) as act:
        act.need(Permission.CASES, "search cases")
        names = camera_names(act)
        found: list[ItemOut] = []
        for case in act.ctx.cases.list():
            if case.member(who.user.name) is None:
                continue
            hits = search_items(act.ctx.workspace.items(case.number), q)
            found += [item_out(act, i, names) for i in hits if _item_in_scope(act, i)]
        found = found[:limit]
        return act.done(CaseSearchOut(count=len(found), items=found), count=len(found),
                        ids=[f"{i.case}/{i.item_id}" for i in found])


def _item_in_scope(act: Action, item: CaseItem) -> bool:
    """Notes are the case's own; everything else only while its camera is in the caller's scope."""
    if not item.camera_id:
        return True
    allowed = act.cameras()
    return allowed is None or item.camera_id in allowed


@router.get("/cases/{number}", response_model=CaseOut, name="cases.get", summary="One case with its members",
            responses=errors(404))
def get_case(request: Request, who: Who, number: NumberPath) -> CaseOut:
    with begin(request, who, "cases.get", {"number": number}) as act:
        act.need(Permission.CASES, "read cases")
        case = visible(act, number)
        count = len(act.ctx.workspace.items(number))
        return act.done(case_out(case, who.user.name, count), count=1, ids=[number])


@router.post("/cases/{number}/members", response_model=CaseOut, name="cases.member",
             summary="Add a member, change their role or remove them (role null)", responses=errors(404, 409))
def set_member(request: Request, who: Who, number: NumberPath, body: MemberIn) -> CaseOut:
    with begin(request, who, "cases.member", {"number": number, "user": body.user, "role": body.role}) as act:
        act.need(Permission.CASES, "manage cases")
        _managed(act, number)
        if body.role is not None and act.ctx.users.get(body.user) is None:
            raise act.refuse(422, f"no such user: {body.user}", outcome="invalid")
        role = MemberRole(body.role) if body.role else None
        case = _changed(act, lambda: act.ctx.cases.set_member(number, body.user, role, by=who.user.name))
        return act.done(case_out(case, who.user.name), count=1, ids=[number])


@router.post("/cases/{number}/close", response_model=CaseOut, name="cases.close",
             summary="Close a case: its face searches, trajectories and exports end with it", responses=errors(404, 409))
def close_case(request: Request, who: Who, number: NumberPath, body: ReasonIn) -> CaseOut:
    with begin(request, who, "cases.close", {"number": number, "reason": body.reason}) as act:
        act.need(Permission.CASES, "manage cases")
        _managed(act, number)
        case = _changed(act, lambda: act.ctx.cases.close(number, by=who.user.name, reason=body.reason))
        return act.done(case_out(case, who.user.name), count=1, ids=[number])


@router.post("/cases/{number}/reopen", response_model=CaseOut, name="cases.reopen", summary="Reopen a closed case",
             responses=errors(404, 409))
def reopen_case(request: Request, who: Who, number: NumberPath, body: ReasonIn) -> CaseOut:
    with begin(request, who, "cases.reopen", {"number": number, "reason": body.reason}) as act:
        act.need(Permission.CASES, "manage cases")
        _managed(act, number)
        case = _changed(act, lambda: act.ctx.cases.reopen(number, by=who.user.name, reason=body.reason))
        return act.done(case_out(case, who.user.name), count=1, ids=[number])


@router.get("/cases/{number}/items", response_model=ItemList, name="cases.items",
            summary="The case's timeline (saved items in time order), optionally searched", responses=errors(404))
def list_items(request: Request, who: Who, number: NumberPath,
               q: Annotated[str | None, Query(max_length=200, description="Words every item must contain.")] = None,
               ) -> ItemList:
    with begin(request, who, "cases.items", {"number": number, "q": q}) as act:
        act.need(Permission.CASES, "read cases")
        visible(act, number)
        items = act.ctx.workspace.items(number)
        if q:
            items = search_items(items, q)
        names = camera_names(act)
        out = [item_out(act, i, names) for i in items if _item_in_scope(act, i)]
        out += linked_items(act, number, q, names)
        return act.done(ItemList(count=len(out), case=number, items=out), count=len(out),
                        ids=[i.item_id for i in out])


def linked_items(act: Action, number: str, q: str | None, names: dict[str, str]) -> list[ItemOut]:
    """Items of confirmed linked cases the caller is also a member of (marked with ``linked_from``)."""
    out: list[ItemOut] = []
    for other in act.ctx.links.confirmed_partners(number):
        case = act.ctx.cases.get(other)
        if case is None or case.member(act.who.user.name) is None:
            continue
        items = act.ctx.workspace.items(other)
        if q:
            items = search_items(items, q)
        out += [item_out(act, i, names, linked_from=other) for i in items if _item_in_scope(act, i)]
    return out


@router.post("/cases/{number}/items", response_model=ItemOut, name="cases.save",
             summary="Save a hit, a clip, a synopsis moment or a note into an open case", responses=errors(404))
def save_item(request: Request, who: Who, number: NumberPath, body: ItemIn) -> ItemOut:
    with begin(request, who, "cases.save", {"number": number, "kind": body.kind, "ref": body.ref}) as act:
        act.need(Permission.CASES, "save into cases")
        workable(act, number)
        item = resolve(act, number, body)
        act.params.update(item_id=item.item_id, camera_id=item.camera_id)
        act.record("ok", 200, result_count=1, result_ids=[item.ref or item.item_id])
        assert act.entry is not None
        item = act.ctx.workspace.put(item.model_copy(update={"audit_id": f"{act.entry['writer']}:{act.entry['seq']}"}))
        return item_out(act, item, camera_names(act))


@router.delete("/cases/{number}/items/{item_id}", response_model=ItemOut, name="cases.remove",
               summary="Take an item out of an open case (its record stays, marked removed)", responses=errors(404))
def remove_item(request: Request, who: Who, number: NumberPath, item_id: ItemPath) -> ItemOut:
    with begin(request, who, "cases.remove", {"number": number, "item_id": item_id}) as act:
        act.need(Permission.CASES, "change cases")
        workable(act, number)
        item = act.ctx.workspace.remove(number, item_id, by=who.user.name)
        if item is None:
            raise act.refuse(404, f"no item {item_id} in case {number}")
        return act.done(item_out(act, item, camera_names(act)), count=1, ids=[item_id])


__all__ = ["CASE_TYPES", "router"]
