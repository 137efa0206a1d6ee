"""Log in and out, who am I, users (admins) and the audit log (auditors and admins).

Login (``POST /api/session``) sets the session cookie (HttpOnly, SameSite=Strict, Path=/; Secure with
``api.secure_cookies``), a device cookie (see :mod:`workers.api.limits`) and returns the CSRF token. Failed
logins are audited with the name tried (never the password) and counted per user name + client address
pair and per user name; over the limits further attempts get 429 with ``Retry-After`` (also audited).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from workers.api import audit as audit_log
from workers.api.anonymous import Refused, client_address
from workers.api.auth import SESSION_COOKIE, Action, Principal, begin, principal
from workers.api.contract import errors
from workers.api.ids import AuditActionQuery, UserNameQuery
from workers.api.models import AuditEntries, AuditVerifyOut, LoginRequest, SessionOut, UserList
from workers.api.users import Permission, Role, User

DEVICE_COOKIE = "tubeline_device"

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["session, users and audit"])
Who = Annotated[Principal, Depends(principal)]


def _session_out(request: Request, who: Principal) -> SessionOut:
    return SessionOut(user=who.user.public(), csrf=who.session.csrf if who.session else None, via=who.via,
                      case_pattern=request.app.state.ctx.case_re.pattern)


def _login(request: Request, body: LoginRequest, response: Response) -> SessionOut:
    ctx = request.app.state.ctx
    client = client_address(request)
    trusted = ctx.media.device_user(request.cookies.get(DEVICE_COOKIE)) == body.username
    refusal = ctx.throttle.check(body.username, client, trusted_device=trusted)
    if refusal is not None:
        _audit_login(request, body.username, "refused", 429, refusal.reason)
        raise Refused(429, f"{refusal.reason}; try again in {refusal.retry_after_s} s",
                            headers={"Retry-After": str(refusal.retry_after_s)})
    user = ctx.users.authenticate_password(body.username, body.password)
    if user is None:
        ctx.throttle.failed(body.username, client)
        _audit_login(request, body.username, "refused", 401, "wrong user name or password")
        raise Refused(401, "wrong user name or password")
    ctx.throttle.succeeded(body.username, client)
    session = ctx.sessions.create(user.name, user.epoch)
    who = Principal(user, "session", client, session)
    act = Action(ctx, who, "auth.login", {"trusted_device": trusted})
    act.record("ok", 200)
    response.set_cookie(SESSION_COOKIE, session.sid, max_age=ctx.api.session_ttl_s, httponly=True,
                        samesite="strict", secure=ctx.api.secure_cookies, path="/")
    days = ctx.api.device_cookie_days
    response.set_cookie(DEVICE_COOKIE, ctx.media.device_cookie(user.name, days), max_age=days * 86400,
                        httponly=True, samesite="strict", secure=ctx.api.secure_cookies, path="/api/session")
    return _session_out(request, who)


def _audit_login(request: Request, name: str, outcome: str, status: int, reason: str) -> None:
    ctx = request.app.state.ctx
    entry: dict[str, Any] = {"action": "auth.login", "user": name[:64], "role": None, "via": "password",
             "client": client_address(request), "outcome": outcome, "status": status, "reason": reason,
             "case": None, "params": {}, "result_count": None, "result_ids": [], "exported_keys": []}
    try:
        ctx.audit.append(entry)
    except Exception as exc:
        log.error("audit log write failed for a login: %s", exc)
        raise HTTPException(503, "the audit log cannot be written") from None


@router.post("/session", response_model=SessionOut, name="auth.login", summary="Log in (sets the session cookie)",
             responses=errors(400, 401, 429, authenticated=False))
async def login(request: Request, body: LoginRequest, response: Response) -> SessionOut:
    return await run_in_threadpool(_login, request, body, response)


@router.get("/session", response_model=SessionOut, name="auth.session", summary="Who am I, and my CSRF token",
            responses=errors())
def current_session(request: Request, who: Who) -> SessionOut:
    return _session_out(request, who)


@router.delete("/session", name="auth.logout", summary="Log out", status_code=204, response_class=Response,
               responses=errors())
def logout(request: Request, who: Who) -> Response:
    with begin(request, who, "auth.logout") as act:
        if who.session is not None:
            act.ctx.sessions.end(who.session.sid)
        act.done(None)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/users", response_model=UserList, name="users.list", summary="Users and their roles and scopes (admins)",
            responses=errors())
def list_users(request: Request, who: Who) -> UserList:
    with begin(request, who, "users.list") as act:
        act.need(Permission.USERS, "manage users")
        users: list[User] = act.ctx.users.list()
        body = UserList(users=[u.public() for u in users])
        return act.done(body, count=len(users), ids=[u.name for u in users])


@router.get("/audit", response_model=AuditEntries, name="audit.read", summary="The newest audit entries",
            responses=errors())
def read_audit(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    user: UserNameQuery = None,
    action: AuditActionQuery = None,
) -> AuditEntries:
    with begin(request, who, "audit.read", {"limit": limit, "user": user, "action": action}) as act:
        act.need(Permission.AUDIT, "read the audit log")
        entries = audit_log.tail(act.ctx.store, limit, prefix=act.ctx.audit.prefix, user=user, action=action)
        return act.done(AuditEntries(count=len(entries), entries=entries), count=len(entries))


@router.get("/audit/verify", response_model=AuditVerifyOut, name="audit.verify",
            summary="Check every chain of the audit log for edited, reordered or missing entries", responses=errors())
def verify_audit(request: Request, who: Who) -> AuditVerifyOut:
    with begin(request, who, "audit.verify") as act:
        act.need(Permission.AUDIT, "verify the audit log")
        report = audit_log.verify(act.ctx.store, act.ctx.audit.prefix)
        chains = {w: {"last_seq": seq, "head": digest} for w, (seq, digest) in report.chains.items()}
        body = AuditVerifyOut(ok=report.ok, entries=report.entries, chains=chains,
                              problems=[str(p) for p in report.problems])
        return act.done(body, count=report.entries)


__all__ = ["Role", "router"]
