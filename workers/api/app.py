"""The FastAPI application: routers, error bodies, security headers, the web UI and the OpenAPI document.

``create_app(ctx)`` builds the app around an :class:`~workers.api.context.ApiContext`. The OpenAPI
document is at ``/api/openapi.json``; ``/api/docs`` is a self-contained page that renders it (the
stock Swagger UI loads from a CDN, which this deployment must not need). The UI is the static folder
``web/`` served at ``/``.

Errors are JSON: ``{"detail": "..."}``; input validation errors are 422 with one message per field
(``{"detail": "...", "errors": [{"field": "query.q", "message": "..."}]}``) and never echo the input.
An authenticated caller's invalid request is audited like any other call, and so is a body over its limit
(413, :mod:`workers.api.bodylimit`, enforced while the body streams in). A 405 names every method the
path has in ``Allow``. The OpenAPI document lists every status of every route (:mod:`workers.api.contract`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers.api import (
    routes_admin,
    routes_cases,
    routes_console,
    routes_devices,
    routes_enhance,
    routes_evidence,
    routes_health,
    routes_hotlists,
    routes_links,
    routes_live,
    routes_manage,
    routes_media,
    routes_search,
    routes_synopsis,
    routes_timeline,
    routes_units,
    routes_video,
)
from workers.api.anonymous import Refused, route_name
from workers.api.auth import Action, authenticate
from workers.api.bodylimit import BodyLimit, BodyTooLarge
from workers.api.context import ApiContext
from workers.api.contract import finish_openapi

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"


def find_web_dir(configured: str | None) -> Path:
    """``api.web_dir``, else the checkout's ``web/``, else ``./web`` (an installed package next to a copy)."""
    if configured:
        return Path(configured)
    return WEB_DIR if WEB_DIR.is_dir() else Path.cwd() / "web"
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
UPLOAD_PATHS = ("/api/search/faces", "/api/trajectory/face")
"""Routes whose body is a multipart image upload (limit ``api.max_upload_bytes``; others ``api.max_body_bytes``)."""

def content_security_policy(tile_url: str | None) -> str:
    """The page's CSP; a configured map tile server's origin may serve images too."""
    if not tile_url:
        return CSP
    scheme, rest = tile_url.split("://", 1)
    origin = f"{scheme}://{rest.split('/', 1)[0]}"
    return CSP.replace("img-src 'self' data: blob:;", f"img-src 'self' data: blob: {origin};")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"field": ".".join(loc), "message": str(err.get("msg", "invalid"))})
    return out


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    summary = "; ".join(f"{e['field'].split('.', 1)[-1]}: {e['message']}" for e in errors[:5])
    if not await _audit_refusal(request, 422, summary[:500], {"errors": errors[:20]}, outcome="invalid"):
        return JSONResponse({"detail": "the audit log cannot be written"}, status_code=503)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)


async def _audit_refusal(request: Request, status: int, reason: str, params: dict[str, Any], *,
                         outcome: str = "refused") -> bool:
    """Audit a refusal made before (or outside) an endpoint's :class:`Action`: as the caller's call when the
    request authenticates, else as an anonymous refusal. False when the audit log cannot be written."""
    ctx: ApiContext = request.app.state.ctx
    try:
        who = await run_in_threadpool(authenticate, ctx, request)
        if who is None:
            await run_in_threadpool(ctx.anonymous.record, ctx.audit, request, status, reason)
        else:
            act = Action(ctx, who, route_name(request), params)
            await run_in_threadpool(act.record, outcome, status, reason=reason)
    except Exception:  # the 503 of a failed audit write wins over the refusal
        return False
    return True


async def _body_too_large(request: Request, exc: BodyTooLarge) -> Response:
    """413, audited as the caller's refused call (or as an anonymous refusal)."""
    reason = str(exc.detail)
    if not await _audit_refusal(request, 413, reason, {"limit": exc.limit}):
        return JSONResponse({"detail": "the audit log cannot be written"}, status_code=503)
    return JSONResponse({"detail": reason}, status_code=413, headers={"Connection": "close"})


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for every route template ``path`` matches (+ HEAD with GET)."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, operations in app.openapi().get("paths", {}).items():
            rx = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")
            methods = {m.upper() for m in operations}
            table.append((rx, methods | ({"HEAD"} if "GET" in methods else set())))
        app.state.allow_table = table
    return sorted({m for rx, methods in table if rx.match(path) for m in methods})


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's errors as JSON; a 405 lists in ``Allow`` the methods of every route on that path."""
    if exc.status_code == 405:
        allow = ", ".join(_allowed_methods(request.app, request.url.path))
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})
    audited = isinstance(exc, Refused) or exc.status_code == 404 and "route" not in request.scope
    if 400 <= exc.status_code < 500 and not audited:  # e.g. FastAPI's 400 for a body it cannot parse
        if not await _audit_refusal(request, exc.status_code, str(exc.detail)[:500], {}):
            return JSONResponse({"detail": "the audit log cannot be written"}, status_code=503)
    return await http_exception_handler(request, exc)  # type: ignore[arg-type]


def _mount_web(app: FastAPI, web_dir: Path) -> None:
    if not web_dir.is_dir():
        log.warning("web UI folder %s not found; serving the API only", web_dir)
        return
    app.mount("/static", StaticFiles(directory=web_dir), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(web_dir / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(web_dir / "docs.html", headers={"Cache-Control": "no-cache"})


def create_app(ctx: ApiContext, *, web_dir: Path | None = None, start_background: bool = True) -> FastAPI:
    """The API + UI application around ``ctx`` (background work starts and stops with the app)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_background:
            ctx.start()
        try:
            yield
        finally:
            await run_in_threadpool(ctx.stop)

    app = FastAPI(
        title="Tubeline API",
        version="1",
        description="Search, trajectories, sightings, clip exports, video synopses, alerts and cameras — every call authenticated, "
        "scoped to the caller's cameras and written to the hash-chained audit log.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    csp = content_security_policy(ctx.api.map_tile_url)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(BodyTooLarge, _body_too_large)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, default_bytes=ctx.api.max_body_bytes, upload_bytes=ctx.api.max_upload_bytes,
                       upload_paths=UPLOAD_PATHS)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, csp if name == "Content-Security-Policy" else value)
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in (routes_admin, routes_search, routes_media, routes_synopsis, routes_live, routes_devices,
                   routes_video, routes_timeline, routes_console, routes_manage, routes_hotlists, routes_health, routes_cases,
                   routes_links, routes_evidence, routes_enhance, routes_units):
        app.include_router(module.router)
    app.include_router(routes_health.metrics_router)
    _mount_web(app, web_dir or find_web_dir(ctx.api.web_dir))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish_openapi(FastAPI.openapi(app), ctx.case_re.pattern)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
