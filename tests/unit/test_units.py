"""Units from GB/T 2260 codes and GB/T 28181 IDs, a city scope seeing its counties, and time-boxed elevated access:
asked with a reason, approved by another admin, used (and named in the audit log), ending by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.cameras.registry import CameraRegistry
from pipeline.cameras.units import ancestors, camera_unit, level_of, unit_covers, unit_tree
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.config.ingest import CameraSpec
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import FakeAnalyzer, add_users, login, register_cameras, sample_search
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import build_context
from workers.api.users import Scope, UserStore

GB_CAM = "51011607001320000007"  # a GB/T 28181 device of station 07 of county 510116, no registry unit


@pytest.mark.parametrize(("scope", "unit", "covered"), [
    ("510100", "510104", True), ("5101", "51011607", True), ("510000", "510116", True), ("510104", "510116", False),
    ("510100", "510200", False), ("51010401", "510104", False), ("sichuan", "sichuan/chengdu", True)])
def test_units_cover_their_sub_units(scope: str, unit: str, covered: bool) -> None:
    assert unit_covers(scope, unit) is covered


def test_the_tree_is_derived_from_codes_and_gb_ids() -> None:
    assert camera_unit("", GB_CAM) == "51011607" and camera_unit("510104", GB_CAM) == "510104"
    assert ancestors("51011607") == ["510000", "510100", "510116", "51011607"]
    assert [level_of(u) for u in ancestors("51011607")] == ["province", "city", "county", "station"]
    tree = [n.as_dict() for n in unit_tree([("a", "510104"), ("b", "51011607"), ("c", "510104")])]
    assert tree[0]["code"] == "510000" and [c["code"] for c in tree[0]["children"][0]["children"]] == ["510104", "510116"]
    assert tree[0]["children"][0]["children"][1]["children"][0]["cameras"] == ["b"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, LocalStore]]:
    store = LocalStore(tmp_path / "store")
    register_cameras(store)
    CameraRegistry(store).put(CameraSpec(id=GB_CAM, name="Station camera", kind="gb28181", gb_device_id=GB_CAM))
    add_users(store)
    UserStore(store).update("ivy", scope=Scope(units=("510100",)))  # a city: every county of it
    config = TubelineConfig()
    ctx = build_context(config, store=ScopedStore(store, access_matrix(config)["api"]), search=sample_search(),
                        face_analyzer_factory=FakeAnalyzer, audit_writer="test", api=ApiConfig(cache_dir=str(tmp_path)))
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c, store


def test_a_city_scope_sees_its_counties_and_an_elevation_ends_by_itself(client: tuple[TestClient, LocalStore]) -> None:
    c, store = client
    login(c, "ivy")
    tree = c.get("/api/units").json()
    assert tree["count"] == 4  # cam-a, cam-b (510104), cam-c (510116) and the GB camera (51011607)
    UserStore(store).update("ivy", scope=Scope(units=("510104",)))  # now one county only
    assert {cam["camera_id"] for cam in c.get("/api/cameras").json()["cameras"]} == {"cam-a", "cam-b"}
    asked = c.post("/api/elevations", json={"units": ["510116"], "reason": "pursuit crossed into Shuangliu",
                                            "hours": 0.0003, "case": "CASE-2024-0042"})
    assert asked.status_code == 200 and asked.json()["status"] == "requested" and not asked.json()["active"]
    eid = asked.json()["id"]
    assert c.post(f"/api/elevations/ivy/{eid}/approve").status_code == 403  # investigators decide nothing
    login(c, "boss")
    approved = c.post(f"/api/elevations/ivy/{eid}/approve")
    assert approved.status_code == 200 and approved.json()["active"]
    login(c, "ivy")
    hits = c.get("/api/search/plates", params={"q": "川AF058Y"}).json()["hits"]
    assert "cam-c" in {h["camera_id"] for h in hits}
    entry = tail(store, 1)[0]
    assert entry["action"] == "search.plates" and entry["params"]["elevations"] == [f"ivy/{eid}"]
    time.sleep(1.2)  # 0.0003 h: it ends by itself
    hits = c.get("/api/search/plates", params={"q": "川AF058Y"}).json()["hits"]
    assert "cam-c" not in {h["camera_id"] for h in hits} and "elevations" not in tail(store, 1)[0]["params"]

    login(c, "boss")
    own = c.post("/api/elevations", json={"cameras": ["cam-x"], "reason": "x", "hours": 1}).json()["id"]
    assert c.post(f"/api/elevations/boss/{own}/approve").status_code == 403  # never one's own
    actions = [e["action"] for e in tail(store, 30)]
    assert {"elevations.request", "elevations.decide", "units.tree"} <= set(actions)
