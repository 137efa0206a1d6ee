"""Plate hotlists through the admin API: admins only, plates validated by the shared normaliser, versioned
(409 on a stale edit), every change audited with a change record, lists from files read-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.api import ApiConfig
from pipeline.hotlists import HotlistRepository
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import add_users, login, sample_search
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import ApiContext, build_context
from workers.plate.hotlists import HotlistBook


@pytest.fixture
def ctx(tmp_path: Path) -> ApiContext:
    store = LocalStore(tmp_path / "store")
    add_users(store)
    listed = tmp_path / "wanted.csv"
    listed.write_text("plate,note\nAB45IEJ,case 2\n", encoding="utf-8")
    config = with_overrides(TubelineConfig(), {"hotlists.files": [str(listed)], "hotlists.refresh_s": 1.0})
    return build_context(config, store=store, search=sample_search(), audit_writer="test",
                         api=ApiConfig(cache_dir=str(tmp_path / "cache")))


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


def test_admin_creates_edits_and_deletes_a_list_with_versions_and_audit(client: TestClient, ctx: ApiContext) -> None:
    login(client, "otto")
    assert client.get("/api/admin/hotlists").status_code == 403  # operators do not edit hotlists
    login(client, "boss")
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    body = {"expect_version": 0, "reason": "reported stolen", "severity": "critical",
            "entries": [{"plate": "川a·f058-y", "note": "case 7", "expires_at": soon}]}
    made = client.put("/api/admin/hotlists/stolen", json=body)
    assert made.status_code == 200, made.text
    assert made.json()["version"] == 1 and made.json()["entries"][0]["plate"] == "川AF058Y"  # normalised
    assert client.put("/api/admin/hotlists/stolen", json=body).status_code == 409  # "new" again: it exists now
    body["expect_version"], body["entries"] = 1, [*body["entries"], {"plate": "湘A0PQ76"}]
    assert client.put("/api/admin/hotlists/stolen", json=body).json()["version"] == 2
    stale = client.put("/api/admin/hotlists/stolen", json={**body, "expect_version": 1})
    assert stale.status_code == 409 and "version 2" in stale.json()["detail"]
    bad = client.put("/api/admin/hotlists/stolen", json={**body, "expect_version": 2,
                                                         "entries": [{"plate": "湘A0PQ76"}, {"plate": "AB#12!"}]})
    assert bad.status_code == 422 and "entries.1.plate" in bad.json()["detail"] and "not plate text" in bad.json()["detail"]
    twice = client.put("/api/admin/hotlists/stolen", json={**body, "expect_version": 2,
                                                           "entries": [{"plate": "湘A0PQ76"}, {"plate": "湘a0pq76"}]})
    assert twice.status_code == 422 and "listed twice" in twice.json()["detail"]

    listed = {h["name"]: h for h in client.get("/api/admin/hotlists").json()["lists"]}
    assert listed["stolen"]["source"] == "store" and listed["stolen"]["plates"] == 2
    assert listed["wanted"]["source"] == "file"  # from hotlists.files: shown, not editable here
    assert client.delete("/api/admin/hotlists/wanted").status_code == 404
    assert client.get("/api/admin/hotlists/wanted").json()["entries"][0]["plate"] == "AB45IEJ"

    # the plate worker's book sees what the API saved
    book = HotlistBook(ctx.config.hotlists, ctx.store)
    book.refresh(force=True)
    assert [h.name for h, _, _ in book.match("湘A0PQ76")] == ["stolen"]
    assert client.delete("/api/admin/hotlists/stolen?expect_version=1").status_code == 409
    assert client.delete("/api/admin/hotlists/stolen?expect_version=2").status_code == 200
    assert HotlistRepository(ctx.store).find("stolen") is None

    entries = [e for e in tail(ctx.store, 40) if e["action"].startswith("admin.hotlist")]
    assert [(e["action"], e["status"]) for e in entries] == [
        ("admin.hotlists", 403), ("admin.hotlist.put", 200), ("admin.hotlist.put", 409), ("admin.hotlist.put", 200),
        ("admin.hotlist.put", 409), ("admin.hotlist.put", 422), ("admin.hotlist.put", 422), ("admin.hotlists", 200),
        ("admin.hotlist.delete", 404), ("admin.hotlist", 200), ("admin.hotlist.delete", 409),
        ("admin.hotlist.delete", 200)]
    change = json.loads(ctx.store.get(entries[3]["params"]["change"]))
    assert change["user"] == "boss" and change["after"]["added"] == ["湘A0PQ76"] and change["after"]["version"] == 2


def test_expired_entries_do_not_match(ctx: ApiContext) -> None:
    from pipeline.hotlists import Hotlist

    past = datetime.now(UTC) - timedelta(minutes=1)
    HotlistRepository(ctx.store).put(Hotlist.model_validate({"name": "old", "entries": [
        {"plate": "湘A0PQ76", "expires_at": past.isoformat()}, {"plate": "川AF058Y"}]}))
    book = HotlistBook(ctx.config.hotlists, ctx.store)
    book.refresh(force=True)
    assert book.match("湘A0PQ76") == [] and [h.name for h, _, _ in book.match("川AF058Y")] == ["old"]
    with pytest.raises(ValueError, match="time zone"):
        Hotlist.model_validate({"name": "x", "entries": [{"plate": "川AF058Y", "expires_at": "2030-01-01T00:00:00"}]})
