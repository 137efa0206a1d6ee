"""The FastAPI application: routers, error bodies, security headers, the web UI and the OpenAPI document.

``create_app(ctx)`` builds the app around an :class:`~workers.api.context.ApiContext`. The OpenAPI
document is at ``/api/openapi.json``; ``/api/docs`` is a self-contained page that renders it (the
stock Swagger UI loads from a CDN, which this deployment must not need). The UI is the static folder
``web/`` served at ``/``.

Errors are JSON: ``{"detail": "..."}``; input validation errors are 422 with one message per field
(``{"detail": "...", "errors": [{"field": "query.q", "message": "..."}]}``) and never echo the input.
An authenticated caller's invalid request is audited like any other call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from workers.api import routes_admin, routes_live, routes_media, routes_search, routes_synopsis
from workers.api.auth import Action, authenticate
from workers.api.context import ApiContext

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
    ctx: ApiContext = request.app.state.ctx
    who = await run_in_threadpool(authenticate, ctx, request)
    if who is not None:
        route = request.scope.get("route")
        name = getattr(route, "name", None) or request.url.path
        act = Action(ctx, who, name, {"errors": errors[:20]})
        try:
            await run_in_threadpool(act.record, "invalid", 422, reason=summary[:500])
        except Exception:  # the 503 of a failed audit write wins over the 422
            return JSONResponse({"detail": "the audit log cannot be written"}, status_code=503)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)


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
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # noqa: ANN001, ANN202
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in (routes_admin, routes_search, routes_media, routes_synopsis, routes_live):
        app.include_router(module.router)
    _mount_web(app, web_dir or find_web_dir(ctx.api.web_dir))
    return app
