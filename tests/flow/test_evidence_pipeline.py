"""An evidence package built from a real pipeline run verifies, and one changed byte anywhere fails.

5 s of the sample video (vtest.avi, re-encoded to H.264) go through the embedded pipeline (ingest with its
recorder → detect + track → index); the API over the real SearchService and the recordings opens a case, saves a
vehicle track, a person track and a note, builds a package and downloads it. ``tubeline evidence verify``
accepts it (exit 0) and refuses it (exit 1) once one byte of the manifest is changed; the same check in process
refuses a change inside every other member.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.cases.package import verify_package
from pipeline.cases.signing import EvidenceKeys
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.ingest import CameraSpec
from pipeline.search.service import SearchService
from pipeline.store import open_store
from tests.unit.test_api_support import add_users, login
from workers.api.app import create_app
from workers.api.context import build_context
from workers.runner.embedded import run_embedded

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO.parent / "shared" / "testdata"
CASE = "CASE-2026-0318"


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> TubelineConfig:
    tmp = tmp_path_factory.mktemp("evidence")
    clip = tmp / "vtest5.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(TESTDATA / "vtest.avi"), "-t", "5", "-c:v", "libx264",
                    "-g", "10", "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=120)
    config = with_overrides(TubelineConfig(), {
        "store.local.root": str(tmp / "store"), "ingest.overflow": "block", "ingest.analysis_fps": 5.0,
        "index.cache_dir": str(tmp / "search-cache"), "index.flush_interval_s": 0.3,
        "api.cache_dir": str(tmp / "api-cache"), "cases.evidence_key_file": str(tmp / "evidence.key")})
    camera = CameraSpec(id="cam-vt", name="Town square", kind="file", device_type="file", url=str(clip),
                        realtime=False, latitude=30.66, longitude=104.06, admin_unit="510104",
                        gb_device_id="51010400001320000001")
    result = run_embedded(config, [camera], timeout_s=300)
    assert result.frames_published >= 20 and result.objects["recordings"][0] >= 1
    store = open_store(config)
    from pipeline.cameras.registry import CameraRegistry

    CameraRegistry(store).put(camera)
    add_users(store)
    return config


def test_a_package_from_a_real_run_verifies_and_a_changed_byte_fails(pipeline_run: TubelineConfig,
                                                                      tmp_path: Path) -> None:
    config = pipeline_run
    store = open_store(config)
    search = SearchService(store, config)
    search.refresh()
    cur = search.catalog.cursor()
    tracks = dict(cur.execute("SELECT class_name, track_id FROM tracks ORDER BY started_at, track_id").fetchall())
    assert {"person", "truck"} <= set(tracks), tracks
    ctx = build_context(config, store=ScopedStore(store, access_matrix(config)["api"]), search=search,
                        face_analyzer_factory=lambda: None)
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        assert client.post("/api/cases", json={
            "number": CASE, "title": "Hit and run, town square", "case_type": "traffic", "unit": "510104",
            "legal_basis": "Road Traffic Safety Law art. 70", "purpose": "identify the truck"}).status_code == 200
        for cls in ("truck", "person"):
            saved = client.post(f"/api/cases/{CASE}/items", json={"kind": "track", "ref": f"{tracks[cls]}/0"})
            assert saved.status_code == 200, saved.text
        client.post(f"/api/cases/{CASE}/items", json={"kind": "note", "note": "witness saw a white truck"})
        built = client.post(f"/api/cases/{CASE}/packages", json={"reason": "requested by the traffic prosecutor"})
        assert built.status_code == 200, built.text
        assert built.json()["skipped"] == []
        package = tmp_path / "package.zip"
        package.write_bytes(client.get(built.json()["url"]).content)

    env = {**os.environ, "PYTHONPATH": str(REPO),
           "TUBELINE_CASES__EVIDENCE_KEY_FILE": str(config.cases.evidence_key_file)}
    ok = subprocess.run([sys.executable, "-m", "workers.cli", "evidence", "verify", str(package)], env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("OK "), ok.stdout + ok.stderr
    report = verify_package(package, EvidenceKeys(config.cases.evidence_key_file).public_keys())
    clips = [f for f in report.manifest["files"] if f["kind"] == "clip"]
    assert len(clips) == 2 and all(c["remuxed"] and c["gb_id"] == "51010400001320000001" for c in clips)
    assert all(c["camera_name"] == "Town square" and c["start_local"].endswith("+08:00") for c in clips)

    data = package.read_bytes()
    with zipfile.ZipFile(package) as zf:
        members = [(i.filename, i.header_offset + 30 + len(i.filename) + i.file_size // 2) for i in zf.infolist()]
    assert {"manifest.json", "signature.json", "report.html"} <= {m for m, _ in members}
    keys = EvidenceKeys(config.cases.evidence_key_file).public_keys()
    for name, offset in members:
        changed = bytearray(data)
        changed[offset] ^= 0x01
        package.write_bytes(bytes(changed))
        if name == "manifest.json":
            bad = subprocess.run([sys.executable, "-m", "workers.cli", "evidence", "verify", str(package)], env=env,
                                 capture_output=True, text=True, timeout=120)
            assert bad.returncode == 1 and "FAIL" in bad.stdout, bad.stdout + bad.stderr
        assert not verify_package(package, keys).ok, name
