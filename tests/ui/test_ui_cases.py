"""The case library in real headless Chromium: an investigator opens a case, saves a plate hit and its clip from
the sighting dialog, previews the redaction of its clip, enhances a still (original and enhanced copy side by
side), builds an evidence package and downloads it — and the downloaded package verifies against the
installation's signing key.

The API runs on a real uvicorn server over the real SearchService and recordings (the scene of
``tests/flow/test_api_scene.py``). Screenshots of each step go to ``var/screenshots/<run>/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.cases.package import verify_package
from pipeline.cases.signing import EvidenceKeys
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.local import LocalStore
from tests.flow.test_api_scene import PLATE, load_analyzer, scene_config, setup_scene
from tests.ui.test_ui_browser import browser, log_in, page, shots  # noqa: F401 - fixtures
from workers.api.serve import ApiServer, start_api

NUMBER = "CASE-2026-0777"


@pytest.fixture(scope="module")
def served_cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, TubelineConfig]]:
    tmp = tmp_path_factory.mktemp("ui-cases")
    config = with_overrides(scene_config(TubelineConfig(), tmp), {"cases.evidence_key_file": str(tmp / "evidence.key")})
    store, bus = LocalStore(tmp / "store"), MemoryBus(default_partitions=3)
    analyzer = load_analyzer()
    setup_scene(config, bus, store, analyzer)
    server = start_api(config, store=store, bus=bus, bootstrap=False, face_analyzer_factory=lambda: analyzer)
    yield server, config
    server.stop()


def test_investigator_opens_a_case_saves_a_hit_and_clip_enhances_a_still_and_downloads_the_package(
        served_cases: tuple[ApiServer, TubelineConfig], page: Any, shots: Path, tmp_path: Path) -> None:  # noqa: F811
    server, config = served_cases
    pg = page
    log_in(pg, server.url, "ann")
    pg.click("#tabs [data-tab=cases]")
    pg.click("#case-new summary")
    for name, value in {"number": NUMBER, "title": "Stolen silver car", "unit": "510104",
                        "legal_basis": "Criminal Procedure Law art. 52", "purpose": "trace the car"}.items():
        pg.fill(f"#case-form [name={name}]", value)
    pg.click("#case-form button[type=submit]")
    pg.wait_for_selector("#case-detail:not([hidden])")
    assert NUMBER in pg.inner_text("#case-title") and pg.input_value("#case") == NUMBER
    pg.screenshot(path=str(shots / "cases-01-opened.png"))

    pg.click("#tabs [data-tab=plates]")
    pg.fill("#plate-form [name=q]", PLATE)
    pg.click("#plate-form button[type=submit]")
    pg.wait_for_selector("#tab-plates .hit")
    pg.focus("#tab-plates .hit:last-child")  # the oldest read: cam-a, which has a recording
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#detail[open] #save-hit:not([hidden])")
    pg.click("#save-hit")
    pg.wait_for_function("() => document.querySelector('#detail-status').textContent.startsWith('Saved to case')")
    pg.click("#play-clip")
    pg.wait_for_selector("#save-clip:not([hidden])", timeout=30_000)
    pg.click("#save-clip")
    pg.wait_for_function("() => document.querySelector('#detail-status').textContent.startsWith('Clip saved')")
    pg.screenshot(path=str(shots / "cases-02-saved.png"))
    pg.keyboard.press("Escape")

    pg.click("#tabs [data-tab=cases]")
    pg.wait_for_function("() => document.querySelectorAll('#case-items li').length === 2")
    # the timeline is in time order: the clip starts before the plate read it was cut around
    assert pg.eval_on_selector_all("#case-items li", "l => l.map(x => x.dataset.kind)") == ["clip", "plate"]
    assert "North gate" in pg.inner_text("#case-map")
    pg.click("#case-on-map")  # the trajectory view's plot, reused for the case's sightings
    pg.wait_for_selector("#tab-trajectory:not([hidden]) #plot .sighting")
    assert "North gate" in pg.inner_text("#trajectory-list")
    pg.screenshot(path=str(shots / "cases-02b-on-the-map.png"))
    pg.click("#tabs [data-tab=cases]")
    pg.wait_for_function("() => document.querySelectorAll('#case-items li').length === 2")
    # the redaction preview of the hit's clip (the scene's synthetic picture has no face or plate to number: the
    # per-object lists are tests/unit/test_redaction.py's, on a real group photo)
    pg.click("#case-items li[data-kind=plate] .redact-item")
    pg.wait_for_function("() => /object\\(s\\)/.test(document.querySelector('#redact-status').textContent)", timeout=60_000)
    assert pg.evaluate("() => document.querySelector('#redact-image').naturalWidth") > 0
    pg.screenshot(path=str(shots / "cases-02c-redaction-preview.png"))
    pg.keyboard.press("Escape")
    pg.click("#case-items li[data-kind=plate] .enhance-item")
    pg.wait_for_selector("#enhance[open]")
    pg.check("#enhance-form input[value=superres]")
    pg.fill("#enhance-form [name=region]", "40,60,200,180")
    pg.click("#enhance-form button[type=submit]")
    pg.wait_for_function("() => { const a = document.querySelector('#enhance-original'), b = document.querySelector("
                         "'#enhance-result'); return a.complete && b.complete && a.naturalWidth > 0 && b.naturalWidth > 0; }",
                         timeout=60_000)
    sizes = pg.evaluate("() => [document.querySelector('#enhance-original').naturalWidth, "
                        "document.querySelector('#enhance-result').naturalWidth]")
    assert sizes == [160, 640], sizes  # the original region beside its ×4 enhanced copy
    assert "superres" in pg.inner_text("#enhance-caption") and "span-x4" in pg.inner_text("#enhance-caption")
    pg.screenshot(path=str(shots / "cases-03-enhanced-side-by-side.png"))
    pg.keyboard.press("Escape")
    pg.wait_for_function("() => document.querySelectorAll('#case-items li').length === 3")

    pg.fill("#package-form [name=reason]", "for the prosecutor")
    pg.click("#package-form button[type=submit]")
    pg.wait_for_selector("#package-list .package-link", timeout=60_000)
    pg.screenshot(path=str(shots / "cases-04-package.png"))
    with pg.expect_download() as download:
        pg.click("#package-list .package-link")
    path = tmp_path / "package.zip"
    download.value.save_as(str(path))
    report = verify_package(path, EvidenceKeys(config.cases.evidence_key_file).public_keys())
    assert report.ok, report.problems
    kinds = sorted(f["kind"] for f in report.manifest["files"])
    assert kinds.count("clip") == 2 and "enhanced" in kinds and report.manifest["case"]["number"] == NUMBER
