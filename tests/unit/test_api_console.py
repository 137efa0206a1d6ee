"""Alert console actions: acknowledge, assign, note — stored, audited, announced to the live streams, scoped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.test_api_support import (
    T0,
    login,
    site_context,
)
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import ApiContext
from workers.api.desk import DeskRecord


@pytest.fixture
def ctx(tmp_path: Path) -> ApiContext:
    return site_context(tmp_path)


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


def body(action: str, value: str = "", camera: str = "cam-a") -> dict[str, str]:
    return {"camera_id": camera, "occurred_at": T0.isoformat(), "action": action, "value": value}


def test_ack_assign_note_are_stored_audited_and_announced(client: TestClient, ctx: ApiContext) -> None:
    announced: list[object] = []
    ctx.alerts.publish_update = announced.append  # type: ignore[method-assign]
    assert ctx.desk is not None
    ctx.desk.on_change = ctx.alerts.publish_update
    login(client, "otto")
    r = client.post("/api/alerts/alert-0/desk", json=body("ack", "checked on camera"))
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["state"] == "acknowledged" and rec["acknowledged_by"] == "otto" and rec["notes"][0]["text"] == "checked on camera"
    assert client.post("/api/alerts/alert-0/desk", json=body("assign", "ann")).json()["assigned_to"] == "ann"
    assert client.post("/api/alerts/alert-0/desk", json=body("note", "patrol sent")).json()["version"] == 3
    assert [e["action"] for e in tail(ctx.store, 3)] == ["alerts.ack", "alerts.assign", "alerts.note"]
    assert len(announced) == 3 and isinstance(announced[-1], DeskRecord) and announced[-1].assigned_to == "ann"
    looked = client.post("/api/alerts/desk/lookup", json={"alerts": [{"camera_id": "cam-a", "alert_id": "alert-0"},
                                                                    {"camera_id": "cam-c", "alert_id": "alert-1"}]})
    records = looked.json()["records"]
    assert records[0]["state"] == "acknowledged" and records[1]["state"] == "new"


def test_refusals(client: TestClient, ctx: ApiContext) -> None:
    login(client, "otto")
    assert client.post("/api/alerts/nope/desk", json=body("ack")).status_code == 404
    assert client.post("/api/alerts/alert-0/desk", json=body("assign", "aud")).status_code == 422  # auditors do not
    assert client.post("/api/alerts/alert-0/desk", json=body("note", "  ")).status_code == 422
    login(client, "ivy")  # not cam-c
    assert client.post("/api/alerts/alert-1/desk", json=body("ack", camera="cam-c")).status_code == 404
    looked = client.post("/api/alerts/desk/lookup", json={"alerts": [{"camera_id": "cam-c", "alert_id": "alert-1"}]})
    assert looked.json()["records"] == []
    login(client, "aud")
    assert client.post("/api/alerts/alert-0/desk", json=body("ack")).status_code == 403
    assert tail(ctx.store, 1)[0]["status"] == 403


def test_updates_reach_the_stream_queue(ctx: ApiContext) -> None:
    async def run() -> object:
        sub, _ = ctx.alerts.subscribe()
        assert ctx.desk is not None
        await asyncio.get_running_loop().run_in_executor(None, ctx.desk.act, "cam-a", "alert-0", "otto", "ack", "")
        return await asyncio.wait_for(sub.queue.get(), 2)

    got = asyncio.run(run())
    assert isinstance(got, DeskRecord) and got.state == "acknowledged"
