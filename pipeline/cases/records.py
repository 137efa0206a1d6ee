"""The case register: cases as records in the object store, their members and their status.

Layout (``{prefix}`` is ``cases.prefix``)::

    {prefix}/records/{number}.json          one case: number, title, type, unit, legal basis, purpose, status,
                                            owner, members with roles, opened/closed times, history
    {prefix}/items/{number}/{item_id}.json  what was saved into the case (pipeline.cases.workspace)
    {prefix}/links/{a}+{b}.json             a suggested, confirmed or rejected link (pipeline.cases.links)

A case's number is its reference everywhere (``CASE-2024-0042``, ``510104-2024-000123``): it must match
``api.case_pattern``, so it is also a safe object-key segment. Face search, trajectories, exports and all
evidence work need an *open* case the user is a *member* of (:meth:`CaseRegister.require`); closing the case
ends that access for everyone at once, on every replica (records are read from the store on every check).

Concurrent edits of one record (two replicas adding members at the same moment) are last-writer-wins on the
store; each change re-reads the record first and keeps a ``revision`` counter, and the history of every change
is in the record and in the audit log. Records are read back as untrusted documents (size-checked, strictly
validated, :mod:`pipeline.documents`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter

from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

VERSION = 1
MAX_RECORD_BYTES = 1024 * 1024
USER = r"^[a-z][a-z0-9_.-]{1,31}$"
UNIT = r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$"
CASE_TYPES = ("criminal", "administrative", "traffic", "missing-person", "public-order", "other")


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class MemberRole(StrEnum):
    LEAD = "lead"  # manages members, closes and reopens the case
    INVESTIGATOR = "investigator"  # searches, saves, exports, builds evidence packages
    VIEWER = "viewer"  # reads the case and its items; no sensitive search or export


SENSITIVE_ROLES = frozenset({MemberRole.LEAD, MemberRole.INVESTIGATOR})
"""Member roles that may run face search, trajectories, exports and evidence work inside the case."""

Text = Annotated[str, StringConstraints(max_length=2000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Strict):
    user: Annotated[str, StringConstraints(pattern=USER)]
    role: MemberRole
    added_at: datetime
    added_by: str


class Change(_Strict):
    at: datetime
    by: str
    what: Annotated[str, StringConstraints(max_length=500)]


class Case(_Strict):
    """One case record."""

    version: int = VERSION
    number: str
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    case_type: str
    unit: Annotated[str, StringConstraints(pattern=UNIT)]
    legal_basis: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    purpose: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    status: CaseStatus
    owner: str
    members: tuple[Member, ...]
    opened_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str = ""
    revision: int = 0
    history: tuple[Change, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status is CaseStatus.OPEN

    def member(self, user: str) -> Member | None:
        return next((m for m in self.members if m.user == user), None)

    def public(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"version"})


_CASE = TypeAdapter(Case)


class CaseError(ValueError):
    """A change to the register was refused (exists, unknown, not allowed); ``status`` is the HTTP analogue."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class CaseRefused(PermissionError):
    """The user may not do sensitive work under this case reference (unknown, closed, not a member)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class CaseRegister:
    """Cases in the object store (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str = "cases", pattern: str | None = None) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.pattern = re.compile(pattern) if pattern else None

    def key(self, number: str) -> str:
        return f"{self.prefix}/records/{number}.json"

    def _check_number(self, number: str) -> None:
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{1,99}", number or "") or (
                self.pattern is not None and not self.pattern.fullmatch(number)):
            msg = f"case number {number!r} does not match the pattern {self.pattern.pattern if self.pattern else ''}"
            raise CaseError(msg, 422)

    # -- reading ---------------------------------------------------------------------------------
    def get(self, number: str) -> Case | None:
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{1,99}", number or ""):
            return None
        try:
            data = self.store.get(self.key(number), length=MAX_RECORD_BYTES + 1)
        except ObjectNotFound:
            return None
        try:
            return read_document(data, _CASE, max_bytes=MAX_RECORD_BYTES, version=VERSION)
        except DocumentRefused as exc:
            log.warning("case record %s refused: %s", number, exc)
            return None

    def list(self) -> list[Case]:
        found = []
        for info in self.store.list(f"{self.prefix}/records/"):
            number = info.key.rsplit("/", 1)[-1].removesuffix(".json")
            case = self.get(number)
            if case is not None:
                found.append(case)
        return sorted(found, key=lambda c: c.opened_at, reverse=True)

    def require(self, number: str, user: str, *, sensitive: bool = True) -> Case:
        """The open case ``number`` with ``user`` as a member (with a role that may do sensitive work when
        ``sensitive``); raises :class:`CaseRefused` with the reason otherwise."""
        case = self.get(number)
        member = case.member(user) if case is not None else None
        if case is None or member is None:
            msg = f"you are not a member of a case {number!r} (ask its lead to add you, or open the case)"
            raise CaseRefused(msg)
        if not case.is_open:
            when = case.closed_at.isoformat() if case.closed_at else "?"
            msg = f"case {number} is closed (since {when}): its searches and exports ended with it"
            raise CaseRefused(msg)
        if sensitive and member.role not in SENSITIVE_ROLES:
            msg = f"your role in case {number} is {member.role.value}: it may read the case, not search or export"
            raise CaseRefused(msg)
        return case

    # -- writing ---------------------------------------------------------------------------------
    def _put(self, case: Case) -> Case:
        data = json.dumps(case.model_dump(mode="json"), ensure_ascii=False, indent=1).encode("utf-8")
        self.store.put(self.key(case.number), data, content_type="application/json")
        return case

    def _change(self, case: Case, by: str, what: str, **updates: object) -> Case:
        history = (*case.history, Change(at=utc_now(), by=by, what=what[:500]))[-500:]
        return self._put(case.model_copy(update={**updates, "revision": case.revision + 1, "history": history}))

    def open(self, *, number: str, title: str, case_type: str, unit: str, legal_basis: str, purpose: str,
             owner: str, members: dict[str, MemberRole] | None = None) -> Case:
        """Open a new case with ``owner`` as its lead (raises CaseError when the number is taken)."""
        self._check_number(number)
        if case_type not in CASE_TYPES:
            msg = f"case type {case_type!r} is not one of {', '.join(CASE_TYPES)}"
            raise CaseError(msg, 422)
        if self.get(number) is not None or self.store.exists(self.key(number)):
            msg = f"case {number} already exists"
            raise CaseError(msg)
        now = utc_now()
        listed = {owner: MemberRole.LEAD, **{u: r for u, r in (members or {}).items() if u != owner}}
        case = Case(number=number, title=title, case_type=case_type, unit=unit, legal_basis=legal_basis,
                    purpose=purpose, status=CaseStatus.OPEN, owner=owner, opened_at=now,
                    members=tuple(Member(user=u, role=r, added_at=now, added_by=owner) for u, r in listed.items()),
                    history=(Change(at=now, by=owner, what="opened"),))
        log.info("case %s opened by %s", number, owner)
        return self._put(case)

    def _require_case(self, number: str) -> Case:
        case = self.get(number)
        if case is None:
            msg = f"no case {number!r}"
            raise CaseError(msg, 404)
        return case

    def set_member(self, number: str, user: str, role: MemberRole | None, *, by: str) -> Case:
        """Add a member, change their role, or remove them (``role`` None). The owner stays lead."""
        case = self._require_case(number)
        if user == case.owner and role is not MemberRole.LEAD:
            msg = f"{user} owns case {number} and stays its lead"
            raise CaseError(msg)
        kept = [m for m in case.members if m.user != user]
        if role is not None:
            old = case.member(user)
            kept.append(Member(user=user, role=role, added_at=old.added_at if old else utc_now(),
                               added_by=old.added_by if old else by))
            what = f"member {user} as {role.value}"
        elif len(kept) == len(case.members):
            msg = f"{user} is not a member of case {number}"
            raise CaseError(msg, 404)
        else:
            what = f"member {user} removed"
        return self._change(case, by, what, members=tuple(sorted(kept, key=lambda m: m.user)))

    def close(self, number: str, *, by: str, reason: str) -> Case:
        case = self._require_case(number)
        if not case.is_open:
            msg = f"case {number} is already closed"
            raise CaseError(msg)
        return self._change(case, by, f"closed: {reason}"[:500], status=CaseStatus.CLOSED, closed_at=utc_now(),
                            closed_by=by, close_reason=reason[:1000])

    def reopen(self, number: str, *, by: str, reason: str) -> Case:
        case = self._require_case(number)
        if case.is_open:
            msg = f"case {number} is open"
            raise CaseError(msg)
        return self._change(case, by, f"reopened: {reason}"[:500], status=CaseStatus.OPEN, closed_at=None,
                            closed_by=None, close_reason="")

    def edit(self, number: str, *, by: str, **fields: str) -> Case:
        """Change title, purpose or legal basis (recorded in the history)."""
        allowed = {k: v for k, v in fields.items() if k in ("title", "purpose", "legal_basis") and v}
        case = self._require_case(number)
        if not allowed:
            return case
        updated = Case.model_validate({**case.model_dump(), **allowed})
        return self._change(updated, by, "edited " + ", ".join(sorted(allowed)))


def can_manage(case: Case, user: str, is_admin: bool) -> bool:
    """Leads of the case and admins manage members and close or reopen it."""
    member = case.member(user)
    return is_admin or (member is not None and member.role is MemberRole.LEAD)
