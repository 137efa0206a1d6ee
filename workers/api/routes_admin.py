"""Log in and out, who am I, users (admins) and the audit log (auditors and admins).

Login (``POST /api/session``) sets the session cookie (HttpOnly, SameSite=Strict, Path=/; Secure with
``api.secure_cookies``) and returns the CSRF token. Failed logins are audited with the name tried
(never the password) and counted per name and per client address; past ``api.login_max_failures``
within ``api.login_lockout_s`` further attempts get 429.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from workers.api import audit as audit_log
from workers.api.auth import SESSION_COOKIE, Action, Principal, authenticate, begin, client_address, principal
from workers.api.models import AuditEntries, AuditVerifyOut, LoginRequest, SessionOut
from workers.api.users import Permission, Role, User

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["session, users and audit"])
Who = Annotated[Principal, Depends(principal)]


def _session_out(request: Request, who: Principal) -> SessionOut:
    return SessionOut(user=who.user.public(), csrf=who.session.csrf if who.session else None, via=who.via,
                      case_pattern=request.app.state.ctx.case_re.pattern)


def _login(request: Request, body: LoginRequest, response: Response) -> SessionOut:
    ctx = request.app.state.ctx
    client = client_address(request)
    keys = (f"user:{body.username}", f"client:{client}")
    if ctx.throttle.locked(*keys):
        _audit_login(request, body.username, "refused", 429, "too many failed logins; locked for a while")
        raise HTTPException(429, "too many failed logins; try again later")
    user = ctx.users.authenticate_password(body.username, body.password)
    if user is None:
        ctx.throttle.failed(*keys)
        _audit_login(request, body.username, "refused", 401, "wrong user name or password")
        raise HTTPException(401, "wrong user name or password")
    ctx.throttle.succeeded(f"user:{body.username}")
    session = ctx.sessions.create(user.name, user.epoch)
    who = Principal(user, "session", client, session)
    act = Action(ctx, who, "auth.login", {})
    act.record("ok", 200)
    response.set_cookie(SESSION_COOKIE, session.sid, max_age=ctx.api.session_ttl_s, httponly=True,
                        samesite="strict", secure=ctx.api.secure_cookies, path="/")
    return _session_out(request, who)


def _audit_login(request: Request, name: str, outcome: str, status: int, reason: str) -> None:
    ctx = request.app.state.ctx
    entry = {"action": "auth.login", "user": name[:64], "role": None, "via": "password",
             "client": client_address(request), "outcome": outcome, "status": status, "reason": reason,
             "case": None, "params": {}, "result_count": None, "result_ids": [], "exported_keys": []}
    try:
        ctx.audit.append(entry)
    except Exception as exc:
        log.error("audit log write failed for a login: %s", exc)
        raise HTTPException(503, "the audit log cannot be written") from None


@router.post("/session", response_model=SessionOut, name="auth.login", summary="Log in (sets the session cookie)")
async def login(request: Request, body: LoginRequest, response: Response) -> SessionOut:
    return await run_in_threadpool(_login, request, body, response)


@router.get("/session", response_model=SessionOut, name="auth.session", summary="Who am I, and my CSRF token")
def current_session(request: Request) -> SessionOut:
    who = authenticate(request.app.state.ctx, request)
    if who is None:
        raise HTTPException(401, "not logged in")
    return _session_out(request, who)


@router.delete("/session", name="auth.logout", summary="Log out", status_code=204, response_class=Response)
def logout(request: Request, who: Who) -> Response:
    with begin(request, who, "auth.logout") as act:
        if who.session is not None:
            act.ctx.sessions.end(who.session.sid)
        act.done(None)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/users", name="users.list", summary="Users and their roles and scopes (admins)")
def list_users(request: Request, who: Who) -> dict[str, list[dict[str, object]]]:
    with begin(request, who, "users.list") as act:
        act.need(Permission.USERS, "manage users")
        users: list[User] = act.ctx.users.list()
        return act.done({"users": [u.public() for u in users]}, count=len(users), ids=[u.name for u in users])


@router.get("/audit", response_model=AuditEntries, name="audit.read", summary="The newest audit entries")
def read_audit(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    user: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditEntries:
    with begin(request, who, "audit.read", {"limit": limit, "user": user, "action": action}) as act:
        act.need(Permission.AUDIT, "read the audit log")
        entries = audit_log.tail(act.ctx.store, limit, prefix=act.ctx.audit.prefix, user=user, action=action)
        return act.done(AuditEntries(count=len(entries), entries=entries), count=len(entries))


@router.get("/audit/verify", response_model=AuditVerifyOut, name="audit.verify",
            summary="Check every chain of the audit log for edited, reordered or missing entries")
def verify_audit(request: Request, who: Who) -> AuditVerifyOut:
    with begin(request, who, "audit.verify") as act:
        act.need(Permission.AUDIT, "verify the audit log")
        report = audit_log.verify(act.ctx.store, act.ctx.audit.prefix)
        chains = {w: {"last_seq": seq, "head": digest} for w, (seq, digest) in report.chains.items()}
        body = AuditVerifyOut(ok=report.ok, entries=report.entries, chains=chains,
                              problems=[str(p) for p in report.problems])
        return act.done(body, count=report.entries)


__all__ = ["Role", "router"]
