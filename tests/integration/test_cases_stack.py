"""The case library on the real S3 server under the API's own store identity (SeaweedFS enforcing the access
matrix): a case opened, a hit saved, an evidence package built from recordings in S3, stored under
``evidence/``, downloaded and verified; the API identity still cannot delete what it wrote there."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.access import AccessDenied
from pipeline.cases.package import verify_package
from pipeline.cases.signing import EvidenceKeys
from pipeline.config import with_overrides
from pipeline.config.api import ApiConfig
from pipeline.store import open_store
from pipeline.store.base import StoreError
from tests.unit.test_api_support import (
    T0,
    FakeAnalyzer,
    add_users,
    login,
    register_cameras,
    sample_search,
    write_recording,
)
from workers.api.app import create_app
from workers.api.context import build_context

pytestmark = pytest.mark.integration


def test_a_case_and_its_evidence_package_on_s3_under_the_api_identity(real_stack, unique_name: str,  # noqa: ANN001
                                                                       tmp_path: Path) -> None:
    camera, number = f"cam-{unique_name}", f"CASE-{unique_name[1:].upper()}"
    admin = open_store(real_stack.with_prefix(unique_name))
    register_cameras(admin)
    add_users(admin)
    from pipeline.cameras.registry import CameraRegistry
    from pipeline.config.ingest import CameraSpec

    CameraRegistry(admin).put(CameraSpec(id=camera, name="S3 camera", kind="rtsp", url="rtsp://10.0.0.9/x",
                                         admin_unit="510104"))
    write_recording(admin, camera, T0 - timedelta(seconds=4), 8)
    fake = sample_search()
    fake.plates_.append(fake.plates_[0].model_copy(update={"read_id": f"{camera}:s:1.plate.0",
                                                           "track_id": f"{camera}:s:1", "camera_id": camera}))
    config = with_overrides(real_stack.as_service("api", unique_name),
                            {"cases.evidence_key_file": str(tmp_path / "evidence.key")})
    store = open_store(config)
    ctx = build_context(config, store=store, search=fake, face_analyzer_factory=FakeAnalyzer,
                        api=ApiConfig(cache_dir=str(tmp_path / "cache")))
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        assert client.post("/api/cases", json={"number": number, "title": "On S3", "case_type": "criminal",
                                               "unit": "510104", "legal_basis": "x", "purpose": "y"}).status_code == 200
        saved = client.post(f"/api/cases/{number}/items", json={"kind": "plate", "ref": f"{camera}:s:1.plate.0"})
        assert saved.status_code == 200, saved.text
        built = client.post(f"/api/cases/{number}/packages", json={"reason": "integration"})
        assert built.status_code == 200, built.text
        package = tmp_path / "package.zip"
        package.write_bytes(client.get(built.json()["url"]).content)
    report = verify_package(package, EvidenceKeys(tmp_path / "evidence.key").public_keys())
    assert report.ok and report.manifest["files"][0]["camera_id"] == camera, report.problems
    assert admin.exists(built.json()["key"])
    with pytest.raises((AccessDenied, StoreError)):  # SeaweedFS itself refuses the API identity a delete there
        store.delete(f"recordings/{camera}/{T0:%Y-%m-%d}/index.json")
