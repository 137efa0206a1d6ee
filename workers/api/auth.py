"""Who is calling, what they may do, and the audit entry of every call.

A request is authenticated by an API token (``Authorization: Bearer tl_…``) or by the UI's session
cookie. Requests that change state with a session cookie must carry the session's CSRF token in
``X-CSRF-Token`` and, when the browser sends one, a same-origin ``Origin`` header.

Each endpoint runs inside an :class:`Action`: it checks the role's permission, the case where one is required
(an open case of the register the caller is a member of, :mod:`pipeline.cases.records`), and the camera scope; whatever happens — served, refused, invalid, failed —
ends in exactly one audit entry, written *before* the response leaves. If the audit log cannot be
written, the caller gets 503 and no data.

Refusals before an endpoint runs are audited too: a failed CSRF check as the caller's refused call, and a
request without valid credentials (401) as an anonymous refusal with the client address — at most one entry
per client address every ``ANONYMOUS_WINDOW_S`` seconds, the next entry counting the refusals in between
(``repeats``), so a scanner cannot turn the audit log into a write amplifier.

:func:`recheck` is what long-lived responses (the alert stream) call every few seconds: the credentials
are authenticated again and the role and camera scope compared with those the stream was opened with.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import HTTPException, Request

from pipeline.cases.records import CaseRefused
from pipeline.search.hits import QueryError
from pipeline.store.base import StoreError
from workers.api.anonymous import Refused, client_address, route_name
from workers.api.context import ApiContext
from workers.api.scope import narrow
from workers.api.sessions import Session
from workers.api.users import Permission, User

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_COOKIE = "tubeline_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_RESULT_IDS = 500


@dataclass(frozen=True)
class Principal:
    user: User
    via: str  # "session" or "token"
    client: str
    session: Session | None = None


def authenticate(ctx: ApiContext, request: Request) -> Principal | None:
    """The caller, or None. Never raises for bad credentials."""
    header = request.headers.get("authorization", "")
    client = client_address(request)
    if header.lower().startswith("bearer "):
        user = ctx.users.authenticate_token(header[7:].strip())
        return Principal(user, "token", client) if user else None
    session = ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    user = ctx.users.get(session.user)
    if user is None or user.disabled or user.epoch != session.epoch:
        return None
    return Principal(user, "session", client, session)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller (401 otherwise; 403 on a failed CSRF check), both audited."""
    ctx: ApiContext = request.app.state.ctx
    who = authenticate(ctx, request)
    if who is None:
        reason = "not authenticated: log in or send 'Authorization: Bearer <token>'"
        ctx.anonymous.record(ctx.audit, request, 401, reason)
        raise Refused(401, reason, headers={"WWW-Authenticate": "Bearer"})
    if who.via == "session" and request.method in UNSAFE_METHODS:
        assert who.session is not None
        sent = request.headers.get(CSRF_HEADER, "")
        if not _same_origin(request) or not hmac.compare_digest(sent, who.session.csrf):
            act = Action(ctx, who, route_name(request), {"method": request.method})
            raise act.refuse(403, "missing or wrong CSRF token (send X-CSRF-Token from GET /api/session)")
    return who


def recheck(ctx: ApiContext, request: Request, who: Principal, permission: Permission,
            cameras: list[str] | None) -> str | None:
    """Why a stream opened by ``who`` with ``cameras`` in scope must close now, or None while nothing changed:
    the credentials no longer authenticate (revoked token, ended session, disabled user), they name another
    user, the role lost ``permission``, or the camera scope changed."""
    now = authenticate(ctx, request)
    if now is None:
        return "credentials revoked or expired"
    if now.user.name != who.user.name:
        return "credentials changed"
    if not now.user.can(permission):
        return f"role {now.user.role.value} may no longer {permission.value.replace('_', ' ')}"
    allowed = narrow(ctx.directory.allowed(now.user), None)
    if allowed != cameras:
        return "camera scope changed"
    return None


@dataclass
class Action:
    """One audited API call. Use as a context manager around the endpoint's work."""

    ctx: ApiContext
    who: Principal
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    case: str | None = None
    recorded: bool = False
    entry: dict[str, Any] | None = None
    """The audit entry once written (its ``writer`` and ``seq`` identify it)."""

    def __enter__(self) -> Action:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """Record the outcome of a failed call; never swallows the exception (it may replace it)."""
        if exc is None or self.recorded:
            return None
        if isinstance(exc, QueryError):
            raise self.refuse(400, str(exc), outcome="invalid") from None
        if isinstance(exc, HTTPException):
            self.record("refused" if exc.status_code < 500 else "error", exc.status_code, reason=str(exc.detail))
            raise Refused(exc.status_code, exc.detail, headers=exc.headers) from None
        if isinstance(exc, StoreError):
            log.warning("%s failed on the object store: %s", self.name, exc)
            self.record("error", 503, reason="object store unavailable")
            raise HTTPException(503, "the object store is unavailable; try again") from None
        log.exception("%s failed", self.name)
        self.record("error", 500, reason=type(exc).__name__)
        return None

    # -- checks ----------------------------------------------------------------------------------
    def need(self, permission: Permission, what: str = "") -> None:
        if not self.who.user.can(permission):
            role = self.who.user.role.value
            raise self.refuse(403, f"role {role} may not {what or permission.value.replace('_', ' ')}")

    def need_case(self, case: str | None, what: str) -> str:
        """The case reference; a refusal when it is missing or malformed (400), or when it names no open case the
        caller is a member of with a role that may search and export (403)."""
        self.case = case or None
        if not case:
            raise self.refuse(400, f"{what} needs a case reference ('case', e.g. CASE-2024-0042)")
        if not self.ctx.case_re.fullmatch(case):
            raise self.refuse(400, f"case reference {case!r} does not match the pattern {self.ctx.case_re.pattern}")
        try:  # an open case the caller is a member of (pipeline.cases.records), read from the store every time
            self.ctx.cases.require(case, self.who.user.name)
        except CaseRefused as exc:
            raise self.refuse(403, str(exc)) from None
        return case

    def cameras(self, requested: Iterable[str] | None = None) -> list[str] | None:
        """The camera scope for the service call: the user's scope narrowed to ``requested``."""
        allowed = narrow(self.ctx.directory.allowed(self.who.user), requested)
        self.params.setdefault("scope", "all" if allowed is None else len(allowed))
        grants = self.ctx.directory.elevations(self.who.user)
        if grants:  # the call used time-boxed elevated access: say which
            self.params.setdefault("elevations", [f"{g.user}/{g.id}" for g in grants])
        return allowed

    # -- outcome ---------------------------------------------------------------------------------
    def record(self, outcome: str, status: int, *, reason: str = "", result_count: int | None = None,
               result_ids: Iterable[str] = (), exported_keys: Iterable[str] = (),
               extra: Mapping[str, Any] | None = None) -> None:
        entry = {
            "action": self.name,
            "user": self.who.user.name,
            "role": self.who.user.role.value,
            "via": self.who.via,
            "client": self.who.client,
            "outcome": outcome,
            "status": status,
            "reason": reason,
            "case": self.case,
            "params": self.params,
            "result_count": result_count,
            "result_ids": list(result_ids)[:MAX_RESULT_IDS],
            "exported_keys": list(exported_keys),
        }
        if extra:
            entry.update(extra)
        self.recorded = True
        try:
            self.entry = self.ctx.audit.append(entry)
        except Exception as exc:
            log.error("audit log write failed for %s: %s", self.name, exc)
            raise HTTPException(503, "the audit log cannot be written; nothing was served") from None

    def refuse(self, status: int, reason: str, *, outcome: str = "refused",
               retry_after_s: int | None = None) -> HTTPException:
        self.record(outcome, status, reason=reason)
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return Refused(status, reason, headers=headers)

    def done(self, result: T, *, count: int | None = None, ids: Iterable[str] = (),
             exported: Iterable[str] = ()) -> T:
        self.record("ok", 200, result_count=count, result_ids=ids, exported_keys=exported)
        return result


def begin(request: Request, who: Principal, name: str, params: dict[str, Any] | None = None) -> Action:
    return Action(request.app.state.ctx, who, name, dict(params or {}))
