"""The KPI page and the daily inspection report in real headless Chromium (Debian's chromium via Playwright).

The API runs on a real uvicorn server over the camera-health scene of ``tests/flow/test_health_flow.py``
(an offline half hour, a recording gap and a "no signal" episode on cam-a; the scheduled daily reports
were already made). An admin opens the KPI page
(cards and SVG charts), drills into unit 510104 and then cam-a's day, makes the daily report from the page
and opens it; an investigator scoped to unit 510104 sees only that unit. Screenshots of each step go to
``var/screenshots/<run>/``. Fails (never skips) when Chromium is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from pipeline.bus.memory import MemoryBus
from pipeline.config import with_overrides
from tests.flow.test_health_flow import DAY, build_scene
from tests.ui.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, REPO, log_in
from workers.api.serve import ApiServer, start_api


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = REPO / "var" / "screenshots" / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-health")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("health-ui")
    config, store, _ = build_scene(tmp)
    config = with_overrides(config, {"api.port": 0, "api.cache_dir": str(tmp / "api-cache")})
    srv = start_api(config, store=store, bus=MemoryBus(), bootstrap=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def page(server: ApiServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: install the Debian package 'chromium'"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-GB", timezone_id="UTC")
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
        yield pg
        browser.close()
        assert errors == [], errors


def _show_day(pg: Any) -> None:
    pg.click("#tabs [data-tab=kpis]")
    pg.fill("#kpi-date", DAY)
    pg.click("#kpi-form button[type=submit]")
    pg.wait_for_selector("#kpi-cameras tr")


def test_admin_reads_kpis_drills_down_and_makes_the_daily_report(page: Any, server: ApiServer, shots: Path) -> None:
    pg = page
    log_in(pg, server.url, "boss")
    _show_day(pg)
    cards = pg.inner_text("#kpi-cards")
    assert "ONLINE RATE" in cards.upper() and "66.7 %" in cards and "n/a until cases exist" in cards
    assert pg.locator("#kpi-charts svg.kpi-chart").count() == 3
    assert pg.locator("#kpi-charts line.kpi-target").count() == 1  # the 95 % target on the online-rate chart
    pg.screenshot(path=str(shots / "01-kpis.png"), full_page=True)

    pg.click("#kpi-units button:text('510104')")  # drill down into the unit
    expect(pg.locator("#kpi-cameras tr")).to_have_count(2)
    pg.click("#kpi-cameras button:text('North gate')")  # cam-a's day
    pg.wait_for_selector("#kpi-camera:not([hidden]) svg")
    assert pg.locator("#kpi-camera rect.kpi-offline").count() == 2
    assert pg.locator("#kpi-camera rect.kpi-fault").count() == 1 and pg.locator("#kpi-camera rect.kpi-gap").count() == 1
    pg.screenshot(path=str(shots / "02-kpis-unit-camera.png"), full_page=True)

    pg.click("#kpi-make")
    expect(pg.locator("#tab-kpis .status")).to_contain_text("made")
    link = pg.locator("#kpi-reports li:has-text('unit 510104') a:text('HTML')")
    href = link.get_attribute("href")
    assert href == f"/api/reports/daily/{DAY}?format=html&unit=510104"
    report = pg.context.new_page()
    report.goto(server.url.rstrip("/") + href)
    assert "Daily inspection" in report.inner_text("h1") and "no_signal" in report.content()
    assert report.evaluate("Array.from(document.images).every((i) => i.complete && i.naturalWidth > 0)")
    assert report.locator("img").count() == 1
    report.screenshot(path=str(shots / "03-daily-report.png"), full_page=True)
    report.close()


def test_unit_investigator_sees_only_the_unit(page: Any, server: ApiServer, shots: Path) -> None:
    pg = page
    pg.click("#logout")
    log_in(pg, server.url, "ivy")
    _show_day(pg)
    assert pg.locator("#kpi-cameras tr").count() == 2 and "510116" not in pg.inner_text("#kpi-units")
    pg.screenshot(path=str(shots / "04-kpis-unit-scope.png"), full_page=True)


def test_metrics_on_the_api_port_for_loopback_callers(server: ApiServer) -> None:
    """What ``tubeline up`` offers: /metrics on the API port, to callers on this machine."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(server.url.rstrip("/") + "/metrics", timeout=10) as response:
        assert response.status == 200
        families = {f.name for f in text_string_to_metric_families(response.read().decode())}
    assert {"tubeline_frames", "tubeline_stage_latency_seconds", "tubeline_worker_state"} <= families
