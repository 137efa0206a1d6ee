"""Case linking (串并案): suggest links between cases that share a plate (look-alikes included), a face above a
threshold or a track; an investigator confirms or rejects; confirmed links let members of both cases see each
other's items.

Suggestions are computed from the cases' saved items whenever they are asked for (they follow what is saved
without any index to keep in step); decisions are records, ``{prefix}/links/{a}+{b}.json`` with ``a < b``,
holding the reasons seen when it was decided, who decided, when and why.

Matching:

* plate: the plate text of a saved plate read or track (``text``) equal in both cases → ``plate``; equal after
  mapping look-alike characters onto one representative (``0/O/D/Q``, ``1/I/T``, ``8/B`` …,
  :mod:`pipeline.lookalikes`, the query layer's groups) → ``plate-lookalike``;
* track: the same ``track_id`` saved in both → ``track``;
* face: two saved faces whose embeddings (from the catalog) have a cosine similarity at or above the threshold
  (the face model's calibrated one unless ``cases.link_face_threshold``) → ``face`` with the score.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from pipeline.cases.records import Case
from pipeline.cases.workspace import CaseItem
from pipeline.documents import DocumentRefused, read_document
from pipeline.lookalikes import LookAlikes
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

VERSION = 1
MAX_LINK_BYTES = 256 * 1024
LinkStatus = Literal["suggested", "confirmed", "rejected"]
ReasonKind = Literal["plate", "plate-lookalike", "track", "face"]
EmbeddingLookup = Callable[[list[str]], Mapping[str, np.ndarray]]
"""face IDs → their (unit) embeddings, for the IDs the catalog still holds."""


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ReasonKind
    a_item: str
    b_item: str
    value: str = Field("", max_length=200, description="The plate texts or track ID shared.")
    score: float | None = None


class CaseLink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = VERSION
    a: str
    b: str
    status: LinkStatus
    reasons: tuple[Reason, ...] = ()
    decided_by: str = ""
    decided_at: datetime | None = None
    note: Annotated[str, StringConstraints(max_length=1000)] = ""

    def other(self, number: str) -> str:
        return self.b if number == self.a else self.a


_LINK = TypeAdapter(CaseLink)


def pair(x: str, y: str) -> tuple[str, str]:
    return (x, y) if x < y else (y, x)


def _plates(items: Iterable[CaseItem]) -> list[tuple[CaseItem, str]]:
    return [(i, i.text.upper()) for i in items if i.kind in ("plate", "track") and i.text]


def match_items(a: list[CaseItem], b: list[CaseItem], *, lookalikes: LookAlikes | None,
                embeddings: Mapping[str, np.ndarray], face_threshold: float | None) -> list[Reason]:
    """Why the items of two cases suggest a link (empty: no reason)."""
    reasons: list[Reason] = []
    for ia, ta in _plates(a):
        for ib, tb in _plates(b):
            if ta == tb:
                reasons.append(Reason(kind="plate", a_item=ia.item_id, b_item=ib.item_id, value=ta))
            elif lookalikes is not None and len(ta) == len(tb) and lookalikes.canonical(ta) == lookalikes.canonical(tb):
                reasons.append(Reason(kind="plate-lookalike", a_item=ia.item_id, b_item=ib.item_id, value=f"{ta}~{tb}"))
    tracks_b = {i.track_id: i for i in b if i.track_id}
    for ia in a:
        if ia.track_id and ia.track_id in tracks_b and not any(r.a_item == ia.item_id for r in reasons):
            reasons.append(Reason(kind="track", a_item=ia.item_id, b_item=tracks_b[ia.track_id].item_id,
                                  value=ia.track_id))
    if face_threshold is not None:
        faces_b = [(i, embeddings[i.ref]) for i in b if i.kind == "face" and i.ref in embeddings]
        for ia in (i for i in a if i.kind == "face" and i.ref in embeddings):
            for ib, vb in faces_b:
                score = float(np.dot(embeddings[ia.ref], vb))
                if score >= face_threshold and ia.ref != ib.ref:
                    reasons.append(Reason(kind="face", a_item=ia.item_id, b_item=ib.item_id, score=round(score, 4)))
    return reasons


class CaseLinks:
    """Link decisions in the store, and suggestions computed from the cases' items."""

    def __init__(self, store: ObjectStore, prefix: str = "cases") -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, a: str, b: str) -> str:
        a, b = pair(a, b)
        return f"{self.prefix}/links/{a}+{b}.json"

    def get(self, a: str, b: str) -> CaseLink | None:
        try:
            data = self.store.get(self.key(a, b), length=MAX_LINK_BYTES + 1)
            return read_document(data, _LINK, max_bytes=MAX_LINK_BYTES, version=VERSION)
        except ObjectNotFound:
            return None
        except DocumentRefused as exc:
            log.warning("case link %s~%s refused: %s", a, b, exc)
            return None

    def decisions(self, number: str) -> list[CaseLink]:
        found = []
        for info in self.store.list(f"{self.prefix}/links/"):
            name = info.key.rsplit("/", 1)[-1].removesuffix(".json")
            a, _, b = name.partition("+")
            if number in (a, b):
                link = self.get(a, b)
                if link is not None:
                    found.append(link)
        return found

    def confirmed_partners(self, number: str) -> list[str]:
        return sorted(link.other(number) for link in self.decisions(number) if link.status == "confirmed")

    def decide(self, a: str, b: str, status: LinkStatus, reasons: Iterable[Reason], *, by: str,
               note: str = "") -> CaseLink:
        x, y = pair(a, b)
        flip = (x, y) != (a, b)
        kept = tuple(Reason(kind=r.kind, a_item=r.b_item, b_item=r.a_item, value=r.value, score=r.score) if flip else r
                     for r in reasons)
        link = CaseLink(a=x, b=y, status=status, reasons=kept, decided_by=by, decided_at=datetime.now(UTC),
                        note=note[:1000])
        self.store.put(self.key(x, y), json.dumps(link.model_dump(mode="json"), ensure_ascii=False).encode(),
                       content_type="application/json")
        return link

    def suggest(self, case: Case, others: Iterable[Case], items: Callable[[str], list[CaseItem]], *,
                lookalikes: LookAlikes | None, embeddings: EmbeddingLookup | None,
                face_threshold: float | None) -> list[tuple[Case, list[Reason], CaseLink | None]]:
        """Every other case sharing something with ``case``: (that case, the reasons, the decision so far)."""
        mine = items(case.number)
        decided = {link.other(case.number): link for link in self.decisions(case.number)}
        out = []
        for other in others:
            if other.number == case.number:
                continue
            theirs = items(other.number)
            face_ids = [i.ref for i in (*mine, *theirs) if i.kind == "face" and i.ref]
            vectors = embeddings(face_ids) if embeddings is not None and face_ids else {}
            reasons = match_items(mine, theirs, lookalikes=lookalikes, embeddings=vectors,
                                  face_threshold=face_threshold)
            if reasons or other.number in decided:
                out.append((other, reasons, decided.get(other.number)))
        return out
