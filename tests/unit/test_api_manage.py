"""Administration API: cameras, the rules document and users — validated, versioned, audited, admins only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.cameras.registry import CameraRegistry
from tests.unit.test_api_support import (
    login,
    site_context,
)
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import ApiContext


@pytest.fixture
def ctx(tmp_path: Path) -> ApiContext:
    return site_context(tmp_path)


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


def test_cameras_add_edit_remove_with_change_records(client: TestClient, ctx: ApiContext) -> None:
    login(client, "boss")
    r = client.put("/api/admin/cameras/gate-9", json={"name": "Gate 9", "kind": "rtsp", "url": "rtsp://127.0.0.1:8554/h264",
                                                       "admin_unit": "510104", "latitude": 30.6, "longitude": 104.0,
                                                       "point_class": "II", "transport": "tcp"})
    assert r.status_code == 200, r.text
    assert CameraRegistry(ctx.store).get("gate-9").name == "Gate 9"
    entry = tail(ctx.store, 1)[0]
    assert entry["action"] == "admin.camera.put" and entry["params"]["change"].startswith("admin/changes/")
    change = json.loads(ctx.store.get(entry["params"]["change"]))
    assert change["before"] is None and change["after"]["name"] == "Gate 9" and change["user"] == "boss"
    bad = client.put("/api/admin/cameras/gate-9", json={"kind": "rtsp", "url": "http://nope"})
    assert bad.status_code == 422 and "rtsp://" in bad.json()["detail"]
    listed = client.get("/api/admin/cameras").json()["cameras"]
    assert "gate-9" in [c["camera_id"] if "camera_id" in c else c["id"] for c in listed]
    assert all("password" not in c for c in listed)
    # the camera list every role sees agrees with the registry at once
    assert "gate-9" in [c["camera_id"] for c in client.get("/api/live").json()["cameras"]]
    assert client.delete("/api/admin/cameras/gate-9").status_code == 200
    assert not CameraRegistry(ctx.store).exists("gate-9")
    assert client.delete("/api/admin/cameras/gate-9").status_code == 404


def test_rules_document_edits_are_validated_and_versioned(client: TestClient, ctx: ApiContext) -> None:
    login(client, "boss")
    got = client.get("/api/admin/rules").json()
    assert got["version"] == 0
    zone = {"cameras": [{"camera_id": "cam-a", "zones": [{"id": "z1", "name": "Door",
                                                          "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.6]]}],
                         "rules": [{"id": "z1-in", "kind": "zone_intrusion", "zone": "z1", "classes": ["person"]}]}]}
    assert client.put("/api/admin/rules", json={"expect_version": 0, "rules": zone}).json()["version"] == 1
    assert client.put("/api/admin/rules", json={"expect_version": 0, "rules": zone}).status_code == 409
    crossing = {"cameras": [{"camera_id": "cam-a", "zones": [{"id": "z", "polygon": [[0, 0], [1, 1], [1, 0.2], [0, 0.8]]}]}]}
    r = client.put("/api/admin/rules", json={"expect_version": 1, "rules": crossing})
    assert r.status_code == 422 and "polygon" in r.json()["detail"]
    geometry = client.get("/api/cameras/cam-a/geometry").json()
    assert geometry["zones"][0]["name"] == "Door"


def test_users_and_refusals(client: TestClient, ctx: ApiContext) -> None:
    login(client, "boss")
    r = client.post("/api/admin/users", json={"name": "olga", "role": "operator", "password": "long enough password",
                                              "scope": {"units": ["510104"]}})
    assert r.status_code == 200, r.text
    assert client.post("/api/admin/users", json={"name": "olga2", "role": "operator", "password": "short"}).status_code == 422
    before = ctx.users.get("olga")
    assert before is not None
    r = client.patch("/api/admin/users/olga", json={"disabled": True})
    assert r.json()["disabled"] and ctx.users.get("olga").epoch == before.epoch + 1  # type: ignore[union-attr]
    assert client.delete("/api/admin/users/olga").status_code == 200
    assert client.delete("/api/admin/users/boss").status_code == 422
    login(client, "otto")
    assert client.put("/api/admin/cameras/x", json={"kind": "file", "url": "/tmp/x.mp4"}).status_code == 403
    assert client.get("/api/admin/rules").status_code == 403
    assert tail(ctx.store, 1)[0]["status"] == 403
