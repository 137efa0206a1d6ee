"""Camera health: KPIs with per-unit drill-down, one camera's health history, the daily inspection reports,
and ``/metrics`` (Prometheus) on the API port.

Every call but ``/metrics`` is authenticated, needs the ``cameras`` permission, sees only the caller's camera
scope and is audited. A unit's report may be read or made by a caller whose scope covers that unit (or
every camera); the report of every camera ("all") only by a caller who sees every camera.

``/metrics`` answers callers on the loopback interface (``tubeline up``, a sidecar scraper) and callers with
an API token of a role that may read the audit log (admins, auditors); it is not audited, since a scraper
calls it every few seconds and it shows no footage or result. Production scrapes each worker's health port
instead (``deploy/prometheus``).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from pipeline import metrics
from pipeline.cameras.units import unit_covers
from pipeline.health.report import list_reports, report_keys, unit_slug
from pipeline.health.service import make_daily_reports
from pipeline.store.base import ObjectNotFound
from workers.api.auth import Action, Principal, authenticate, begin, principal
from workers.api.contract import errors
from workers.api.ids import Day
from workers.api.present import scope_label
from workers.api.users import Permission

router = APIRouter(prefix="/api", tags=["camera health and KPIs"])
metrics_router = APIRouter()
Who = Annotated[Principal, Depends(principal)]
UnitParam = Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_./-]{1,100}$")]
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _day(act: Action, value: date | None) -> str:
    today = datetime.now(UTC).date()
    if value is None:
        return today.isoformat()
    if value > today:
        raise act.refuse(400, "date is in the future", outcome="invalid")
    return value.isoformat()


def _check_unit(act: Action, unit: str | None) -> None:
    scope = act.who.user.scope
    if scope.all_cameras:
        return
    if unit is None:
        raise act.refuse(403, "the report of every camera needs a scope of every camera; name a unit")
    if not any(unit_covers(u, unit) for u in scope.units):
        raise act.refuse(403, f"unit {unit!r} is outside your scope")


@router.get("/kpis", name="health.kpis", summary="KPIs of a day for the cameras in scope, per unit, with each camera's day",
            responses=errors())
def kpis(request: Request, who: Who, day: Annotated[Day | None, Query(alias="date")] = None,
         unit: UnitParam = None) -> dict[str, object]:
    with begin(request, who, "health.kpis", {"date": day.isoformat() if day else None, "unit": unit}) as act:
        act.need(Permission.CAMERAS, "see camera health")
        when = _day(act, day)
        cams = act.cameras()
        service = act.ctx.health
        service.refresh()
        result, rows = service.kpis(when, scope=cams, unit=unit)
        body: dict[str, object] = {"date": when, "unit": unit, "scope": scope_label(cams), "kpis": result.as_json(),
                "cameras": [r.as_json() for r in rows]}
        return act.done(body, count=len(rows), ids=[r.camera.id for r in rows])


@router.get("/cameras/{camera_id}/health", name="health.camera", summary="One camera's health history for a day",
            responses=errors(404))
def camera_health(request: Request, who: Who, camera_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")],
                  day: Annotated[Day | None, Query(alias="date")] = None) -> dict[str, object]:
    params = {"camera": camera_id, "date": day.isoformat() if day else None}
    with begin(request, who, "health.camera", params) as act:
        act.need(Permission.CAMERAS, "see camera health")
        when = _day(act, day)
        cams = act.cameras([camera_id])
        if cams is not None and camera_id not in cams:
            raise act.refuse(404, "no such camera in your scope")
        service = act.ctx.health
        service.refresh()
        rows = service.days(when, scope=[camera_id])
        if not rows:
            raise act.refuse(404, "no such camera in your scope")
        start = datetime.fromisoformat(when).replace(tzinfo=UTC)
        stats = service.history.stream_stats([camera_id], start, start.replace(hour=23, minute=59, second=59))
        body = {"date": when, **rows[0].as_json(),
                "stream": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in s.items()} for s in stats]}
        return act.done(body, count=1, ids=[camera_id])


@router.get("/reports", name="health.reports", summary="Stored daily inspection reports the caller may read",
            responses=errors())
def reports(request: Request, who: Who) -> dict[str, object]:
    with begin(request, who, "health.reports", {}) as act:
        act.need(Permission.CAMERAS, "read inspection reports")
        scope = who.user.scope
        found = list_reports(act.ctx.store, act.ctx.config.quality.report_prefix)
        if not scope.all_cameras:
            found = [r for r in found if r["unit"] != "all" and any(unit_covers(u, r["unit"]) for u in scope.units)]
        out = [{"day": r["day"], "unit": r["unit"],
                "html": f"/api/reports/daily/{r['day']}?format=html" + ("" if r["unit"] == "all" else f"&unit={r['unit']}"),
                "csv": f"/api/reports/daily/{r['day']}?format=csv" + ("" if r["unit"] == "all" else f"&unit={r['unit']}")}
               for r in found]
        return act.done({"count": len(out), "reports": out}, count=len(out))


@router.get("/reports/daily/{day}", name="health.report", summary="A stored daily inspection report (HTML or CSV)",
            response_class=Response,
            responses={200: {"description": "The report", "content": {"text/html": {}, "text/csv": {}}}, **errors(404)})
def report(request: Request, who: Who, day: Day, unit: UnitParam = None,
           fmt: Annotated[Literal["html", "csv"], Query(alias="format")] = "html") -> Response:
    with begin(request, who, "health.report", {"date": day.isoformat(), "unit": unit, "format": fmt}) as act:
        act.need(Permission.CAMERAS, "read inspection reports")
        _check_unit(act, unit)
        html_key, csv_key = report_keys(act.ctx.config.quality.report_prefix, day.isoformat(), unit)
        key = html_key if fmt == "html" else csv_key
        try:
            data = act.ctx.store.get(key)
        except ObjectNotFound:
            raise act.refuse(404, f"no report for {day.isoformat()} ({unit_slug(unit)}); make one first") from None
        act.done(None, count=1, ids=[key])
        if fmt == "csv":
            name = f"inspection-{day.isoformat()}-{unit_slug(unit)}.csv"
            return Response(data, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return Response(data, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": REPORT_CSP})


@router.post("/reports/daily/{day}", name="health.report_make", summary="Make (or remake) a daily inspection report now",
             responses=errors())
async def make_report(request: Request, who: Who, day: Day, unit: UnitParam = None) -> dict[str, object]:
    def work() -> dict[str, object]:
        with begin(request, who, "health.report_make", {"date": day.isoformat(), "unit": unit}) as act:
            act.need(Permission.CAMERAS, "make inspection reports")
            _check_unit(act, unit)
            if day > datetime.now(UTC).date():
                raise act.refuse(400, "date is in the future", outcome="invalid")
            service = act.ctx.health
            service.refresh()
            written = make_daily_reports(service, day.isoformat(), datetime.now(UTC), unit=unit)
            return act.done({"written": written}, count=len(written), ids=written)

    return await run_in_threadpool(work)


def _metrics_allowed(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    who = authenticate(request.app.state.ctx, request)
    return who is not None and who.via == "token" and who.user.can(Permission.AUDIT)


@metrics_router.get("/metrics", name="metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    if not _metrics_allowed(request):
        raise HTTPException(403, "metrics: loopback callers or an admin/auditor API token only")
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
