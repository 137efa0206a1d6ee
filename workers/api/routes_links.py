"""Case linking (串并案) over the API: the links suggested between a case and the others (shared plate, look-alike
plate, face above the threshold, track), and an investigator's decision to confirm or reject one.

A suggestion names the other case (number, title, status, lead) and what they share — never the other case's
items. Once a link is confirmed, members of both cases see each other's items in the case timeline
(``GET /api/cases/{number}/items``, marked ``linked_from``). Every call is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from pipeline.cases.links import CaseLink, Reason
from pipeline.cases.records import Case
from pipeline.lookalikes import LookAlikes
from workers.api.auth import Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.routes_cases import NumberPath, visible, workable
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["cases"])
Who = Annotated[Principal, Depends(principal)]
LOOKALIKES = LookAlikes()


class ReasonOut(BaseModel):
    kind: Literal["plate", "plate-lookalike", "track", "face"]
    a_item: str = Field(description="The item of this case.")
    b_item: str = Field(description="The item of the other case.")
    value: str
    score: float | None


class LinkOut(BaseModel):
    case: str = Field(description="The other case.")
    title: str
    status: Literal["open", "closed"]
    owner: str
    reasons: list[ReasonOut]
    decision: Literal["suggested", "confirmed", "rejected"]
    decided_by: str = ""
    decided_at: datetime | None = None
    note: str = ""


class LinkList(BaseModel):
    count: int
    case: str
    links: list[LinkOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["confirm", "reject"]
    note: str = Field("", max_length=1000, description="Why.")


def _threshold(act: Action) -> float | None:
    configured = act.ctx.config.cases.link_face_threshold
    if configured is not None:
        return configured
    try:
        return float(act.ctx.faces.analyzer().threshold)
    except Exception:  # no face model here: faces are not compared
        return None


def _suggestions(act: Action, case: Case) -> list[tuple[Case, list[Reason], CaseLink | None]]:
    cams = act.cameras()

    def embeddings(face_ids: list[str]) -> Any:
        return act.ctx.search.face_embeddings(face_ids, cameras=cams)

    lookalikes = LOOKALIKES if act.ctx.config.cases.link_lookalikes else None
    return act.ctx.links.suggest(case, act.ctx.cases.list(), act.ctx.workspace.items, lookalikes=lookalikes,
                                 embeddings=embeddings, face_threshold=_threshold(act))


def _oriented(reasons: list[Reason], link: CaseLink | None, number: str) -> list[ReasonOut]:
    """Reasons with ``a_item`` on this case's side (stored decisions keep the pair's sorted order)."""
    out = []
    for r in reasons:
        out.append(ReasonOut(kind=r.kind, a_item=r.a_item, b_item=r.b_item, value=r.value, score=r.score))
    if not reasons and link is not None:
        flip = link.a != number
        out = [ReasonOut(kind=r.kind, a_item=r.b_item if flip else r.a_item, b_item=r.a_item if flip else r.b_item,
                         value=r.value, score=r.score) for r in link.reasons]
    return out


@router.get("/cases/{number}/links", response_model=LinkList, name="cases.links",
            summary="Links suggested between this case and others, with any decision", responses=errors(404))
def list_links(request: Request, who: Who, number: NumberPath) -> LinkList:
    with begin(request, who, "cases.links", {"number": number}) as act:
        act.need(Permission.CASES, "read cases")
        case = visible(act, number)
        out = []
        for other, reasons, link in _suggestions(act, case):
            out.append(LinkOut(case=other.number, title=other.title, status=other.status.value, owner=other.owner,
                               reasons=_oriented(reasons, link, number),
                               decision=link.status if link else "suggested",
                               decided_by=link.decided_by if link else "",
                               decided_at=link.decided_at if link else None, note=link.note if link else ""))
        return act.done(LinkList(count=len(out), case=number, links=out), count=len(out), ids=[o.case for o in out])


@router.post("/cases/{number}/links/{other}", response_model=LinkOut, name="cases.link",
             summary="Confirm or reject the link between this case and another", responses=errors(404))
def decide_link(request: Request, who: Who, number: NumberPath, other: NumberPath, body: DecisionIn) -> LinkOut:
    params = {"number": number, "other": other, "decision": body.decision, "note": body.note}
    with begin(request, who, "cases.link", params) as act:
        act.need(Permission.CASES, "link cases")
        case = workable(act, number)
        found = next(((o, r, lk) for o, r, lk in _suggestions(act, case) if o.number == other), None)
        if found is None or (not found[1] and found[2] is None):
            raise act.refuse(404, f"no link suggested between {number} and {other}")
        target, reasons, previous = found
        kept = reasons or list(previous.reasons if previous else [])
        status: Literal["confirmed", "rejected"] = "confirmed" if body.decision == "confirm" else "rejected"
        link = act.ctx.links.decide(number, other, status, kept, by=who.user.name, note=body.note)
        out = LinkOut(case=other, title=target.title, status=target.status.value, owner=target.owner,
                      reasons=_oriented(reasons, link, number), decision=link.status, decided_by=link.decided_by,
                      decided_at=link.decided_at, note=link.note)
        return act.done(out, count=1, ids=[other])
