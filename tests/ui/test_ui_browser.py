"""The web UI in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser download).

The API runs on a real uvicorn server over the real SearchService (the scene of
``tests/flow/test_api_scene.py`` on the in-memory bus and a local store). The test logs in, searches a
plate, opens a result, plays its clip (the <video> element must load it: readyState ≥ 2, duration > 0),
follows the trajectory, runs a face search with an uploaded image, watches a live alert arrive, and
checks the auditor's view — saving a screenshot of each step under ``var/screenshots/<run>/``.
It fails (never skips) when Chromium is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.topics import ALERTS
from tests.flow.test_api_scene import CASE, PLATE, TESTDATA, load_analyzer, scene_config, setup_scene
from tests.synopsis_scene import CAMERA as SYN_CAMERA
from tests.synopsis_scene import MOVERS, S0, centre, clear_points, setup_synopsis_scene
from tests.unit.test_api_support import PASSWORD, T0
from workers.api.serve import ApiServer, start_api
from workers.runner.companions import api_companions

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = REPO / "var" / "screenshots" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, MemoryBus]]:
    tmp = tmp_path_factory.mktemp("ui")
    config = with_overrides(scene_config(TubelineConfig(), tmp), {"synopsis.worker.poll_s": 0.3})
    store, bus = LocalStore(tmp / "store"), MemoryBus(default_partitions=3)
    analyzer = load_analyzer()
    setup_scene(config, bus, store, analyzer)
    setup_synopsis_scene(config, bus, store)
    api = config.api.model_copy(update={"build_synopses": True})
    server = start_api(config, store=store, bus=bus, bootstrap=False, face_analyzer_factory=lambda: analyzer, api=api,
                       companions=api_companions(config, store, bus=bus, api=api))
    yield server, bus
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: install the Debian package 'chromium'"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-GB", timezone_id="UTC")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    yield pg
    context.close()
    assert errors == [], errors


def log_in(pg: Any, url: str, user: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("#login-view:not([hidden])")
    pg.fill("#login-user", user)
    pg.fill("#login-pass", PASSWORD)
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#app-view:not([hidden])")


def test_investigator_searches_a_plate_plays_the_clip_and_follows_the_trajectory(
        served: tuple[ApiServer, MemoryBus], page: Any, shots: Path) -> None:
    server, bus = served
    pg = page
    pg.goto(server.url)
    pg.wait_for_selector("#login-view:not([hidden])")
    pg.screenshot(path=str(shots / "01-login.png"))
    log_in(pg, server.url, "ann")
    assert "ann · investigator" in pg.inner_text("#who")
    assert pg.is_hidden("#tabs [data-tab=audit]")  # investigators do not read the audit log

    pg.fill("#case", CASE)
    pg.dispatch_event("#case", "change")
    pg.click("#tabs [data-tab=plates]")  # (the first section is Live)
    pg.fill("#plate-form [name=q]", "川A*58?")
    pg.select_option("#plate-form [name=mode]", "wildcard")
    pg.click("#plate-form button[type=submit]")
    pg.wait_for_selector("#tab-plates .hit")
    assert "4 plate reads" in pg.inner_text("#tab-plates .status")
    # Thumbnails load asynchronously: wait until every one has decoded (a broken image never does).
    pg.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#tab-plates .hit img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        timeout=20_000,
    )
    pg.screenshot(path=str(shots / "02-plate-results.png"))

    # keyboard: focus the oldest result (cam-a, recorded) and open it with Enter
    pg.focus("#tab-plates .hit:last-child")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#detail[open]")
    assert PLATE in pg.inner_text("#detail-title") and "North gate" in pg.inner_text("#detail-fields")
    pg.click("#play-clip")
    pg.wait_for_function("() => { const v = document.querySelector('#detail-video');"
                         " return !v.hidden && v.readyState >= 2 && v.duration > 0; }", timeout=30_000)
    state = pg.evaluate("() => { const v = document.querySelector('#detail-video');"
                        " return {ready: v.readyState, duration: v.duration, width: v.videoWidth}; }")
    assert state["ready"] >= 2 and state["duration"] > 10 and state["width"] == 320
    pg.wait_for_function("() => document.querySelector('#detail-video').currentTime > 0.2", timeout=15_000)
    assert "Export" in pg.inner_text("#detail-status") and "SHA-256" in pg.inner_text("#detail-status")
    pg.screenshot(path=str(shots / "03-detail-clip.png"))

    _trajectory_faces_alerts_cameras(pg, bus, shots)


def _trajectory_faces_alerts_cameras(pg: Any, bus: MemoryBus, shots: Path) -> None:
    pg.click("#detail-trajectory")
    pg.wait_for_selector("#trajectory-list li:nth-child(3)")
    items = pg.eval_on_selector_all("#trajectory-list li", "li => li.map(x => x.textContent)")
    assert [i.split("— ")[1] for i in items] == ["North gate", "Ring road", "Airport"]
    assert pg.eval_on_selector_all("#plot line.leg", "l => l.length") == 2
    assert pg.eval_on_selector_all("#plot .sighting", "g => g.length") == 3
    pg.screenshot(path=str(shots / "04-trajectory.png"))

    pg.click("#tabs [data-tab=faces]")
    pg.set_input_files("#face-form [name=image]", str(TESTDATA / "faces" / "person_a_2.jpg"))
    pg.click("#face-form button[type=submit]")
    pg.wait_for_selector("#tab-faces .hit")
    assert "Query face quality" in pg.inner_text("#tab-faces .query-face")
    pg.screenshot(path=str(shots / "05-face-results.png"))
    pg.click("#tab-faces .hit:first-child")  # the best match, then where that person went
    pg.wait_for_selector("#detail[open]")
    pg.click("#detail-trajectory")
    pg.wait_for_function("() => document.querySelector('#tab-trajectory .status').textContent.includes('query face')")
    cams = pg.eval_on_selector_all("#trajectory-list li", "li => li.map(x => x.textContent.split('— ')[1])")
    assert cams == ["North gate", "Airport"]

    pg.click("#tabs [data-tab=alerts]")
    pg.wait_for_selector("#alert-list li:nth-child(2)")
    with bus.producer() as producer:
        alert = Alert(alert_id="ui-live", alert_type="plate_hotlist", camera_id="cam-b", occurred_at=T0,
                      severity="high", rule_id="hotlist-1", message=f"Plate {PLATE} is on hotlist 'stolen'")
        producer.send(ALERTS.name, alert.to_json(), key="cam-b")
    pg.wait_for_function("() => [...document.querySelectorAll('#alert-list li')].some("
                         "li => li.textContent.includes('hotlist'))", timeout=15_000)
    pg.screenshot(path=str(shots / "06-alerts.png"))

    pg.click("#tabs [data-tab=cameras]")
    pg.wait_for_selector("#camera-rows tr:nth-child(3)")
    pg.screenshot(path=str(shots / "07-cameras.png"))


def test_investigator_builds_a_synopsis_and_clicks_an_object_to_its_original_clip(
        served: tuple[ApiServer, MemoryBus], page: Any, shots: Path) -> None:
    server, _ = served
    pg = page
    log_in(pg, server.url, "ann")
    pg.fill("#case", CASE)
    pg.dispatch_event("#case", "change")
    pg.click("#tabs [data-tab=synopsis]")
    pg.select_option("#synopsis-camera", SYN_CAMERA)
    pg.fill("#synopsis-form [name=start]", S0.strftime("%Y-%m-%dT%H:%M:%S"))  # the browser runs in UTC
    pg.fill("#synopsis-form [name=end]", (S0 + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S"))
    pg.fill("#synopsis-form [name=length_s]", "10")
    pg.click("#synopsis-form button[type=submit]")
    pg.wait_for_function("() => { const v = document.querySelector('#synopsis-video');"
                         " return !document.querySelector('#synopsis-frame').hidden && v.readyState >= 2; }",
                         timeout=120_000)
    assert "3 object(s)" in pg.inner_text("#tab-synopsis .status")
    assert "condensed ×" in pg.inner_text("#synopsis-facts")
    pg.wait_for_selector("#synopsis-rows tr[aria-current=true] .pill.done")

    # play it, then click the third mover where no other object is near, at a known frame
    pg.click("#synopsis-play")
    pg.wait_for_function("() => document.querySelector('#synopsis-video').currentTime > 0.5", timeout=15_000)
    synopsis_id = pg.evaluate("() => state.synopsis.synopsis_id")
    index = server.ctx.synopses.index(SYN_CAMERA, synopsis_id)
    assert index is not None
    obj = next(o for o in index.objects if o.track_id == MOVERS[2].track_id)
    frame, box = clear_points(index, obj)[1]
    pg.evaluate(f"() => {{ const v = document.querySelector('#synopsis-video'); v.pause();"
                f" v.currentTime = {(frame + 0.5) / index.fps}; }}")
    pg.wait_for_function("() => !document.querySelector('#synopsis-video').seeking")
    size = pg.evaluate("() => { const v = document.querySelector('#synopsis-video');"
                       " return [v.clientWidth, v.clientHeight]; }")
    cx, cy = centre(box)
    pg.click("#synopsis-video", position={"x": cx * size[0] / index.width, "y": cy * size[1] / index.height})
    pg.wait_for_selector("#synopsis-hit:not([hidden]) #synopsis-hit-fields dd")
    assert MOVERS[2].track_id in pg.inner_text("#synopsis-hit-fields")
    assert "person" in pg.inner_text("#synopsis-hit-title")
    assert pg.is_visible("#synopsis-mark")
    pg.screenshot(path=str(shots / "09-synopsis-click.png"))

    # the object list names every object; picking one marks it as a click would
    pg.click("#synopsis-objects-box summary")
    assert len(pg.query_selector_all("#synopsis-objects li")) == len(MOVERS)
    pg.click(f"#synopsis-objects button[data-track='{MOVERS[0].track_id}']")
    pg.wait_for_function(f"() => document.querySelector('#synopsis-hit-fields').textContent.includes('{MOVERS[0].track_id}')")
    assert pg.is_visible("#synopsis-mark")
    pg.click(f"#synopsis-objects button[data-track='{MOVERS[2].track_id}']")
    pg.wait_for_function(f"() => document.querySelector('#synopsis-hit-fields').textContent.includes('{MOVERS[2].track_id}')")

    pg.click("#synopsis-clip-button")
    pg.wait_for_function("() => { const v = document.querySelector('#synopsis-clip');"
                         " return !v.hidden && v.readyState >= 2 && v.duration > 10 && v.currentTime > 1; }",
                         timeout=60_000)
    assert "the clicked moment is" in pg.inner_text("#synopsis-hit-status")
    pg.evaluate("() => document.querySelector('#synopsis-clip').pause()")
    pg.screenshot(path=str(shots / "10-synopsis-clip.png"), full_page=True)


def test_auditor_reads_and_verifies_the_log(served: tuple[ApiServer, MemoryBus], page: Any, shots: Path) -> None:
    server, _ = served
    log_in(page, server.url, "aud")
    assert page.is_hidden("#tabs [data-tab=plates]") and page.is_visible("#tabs [data-tab=audit]")
    page.click("#tabs [data-tab=audit]")
    page.click("#audit-form button[type=submit]")
    page.wait_for_selector("#audit-rows tr")
    actions = page.eval_on_selector_all("#audit-rows tr td:nth-child(3)", "tds => tds.map(t => t.textContent)")
    assert "auth.login" in actions  # (after the investigator's test, also their searches and export)
    page.click("#audit-verify")
    page.wait_for_function("() => document.querySelector('#tab-audit .status').textContent.startsWith('Verified')")
    page.screenshot(path=str(shots / "08-audit.png"))


def test_operator_has_no_face_search_and_logout_works(served: tuple[ApiServer, MemoryBus], page: Any) -> None:
    server, _ = served
    log_in(page, server.url, "otto")
    assert page.is_hidden("#tabs [data-tab=faces]") and page.is_hidden("#tabs [data-tab=trajectory]")
    # operators review synopses (the investigator's: the same request is the same synopsis) and click objects,
    # but cut no clip
    from pipeline.synopsis.request import SynopsisRequest

    request = SynopsisRequest(camera_id=SYN_CAMERA, start=S0, end=S0 + timedelta(seconds=60), length_s=10.0)
    server.ctx.synopses.submit(request)
    deadline = time.monotonic() + 120
    while (status := server.ctx.synopses.status(SYN_CAMERA, request.synopsis_id())) is None or status.state != "done":
        assert time.monotonic() < deadline and (status is None or status.state in ("queued", "running")), status
        time.sleep(0.3)
    page.click("#tabs [data-tab=synopsis]")
    page.click("#synopsis-rows tr:has(.pill.done)")
    page.wait_for_function("() => { const v = document.querySelector('#synopsis-video');"
                           " return !document.querySelector('#synopsis-frame').hidden && v.readyState >= 2; }",
                           timeout=60_000)
    page.click("#synopsis-objects-box summary")
    page.click("#synopsis-objects li:first-child button")
    page.wait_for_selector("#synopsis-hit:not([hidden]) #synopsis-hit-fields dd")
    assert page.is_hidden("#synopsis-clip-button") and page.is_visible("#synopsis-sighting")
    page.click("#logout")
    page.wait_for_selector("#login-view:not([hidden])")
    assert page.evaluate("async () => (await fetch('/api/cameras')).status") == 401
