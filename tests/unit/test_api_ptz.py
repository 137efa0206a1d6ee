"""PTZ through the API without a device: what is refused before a command is published, and the rate limit that
never keeps a released arrow from stopping the camera."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.search.hits import CameraState
from pipeline.store.local import LocalStore
from schemas.devices import DeviceCommand
from schemas.topics import DEVICE_COMMANDS
from tests.unit.test_api_support import FakeSearch, add_users, login
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import build_context
from workers.api.devices import DeviceDesk, RateLimited

DOME, OFFLINE, GATE = "34020000001320000001", "34020000001320000002", "cam-gate"


class Devices(FakeSearch):
    """Camera states: a GB channel online, one whose device went offline, an RTSP camera."""

    def camera_status(self, *, cameras: Collection[str] | None = None) -> list[CameraState]:
        base = CameraState(camera_id=DOME, name="Dome", latitude=None, longitude=None, admin_unit="", point_class=None,
                           kind="gb28181", enabled=True, status="online")
        states = [base, base.model_copy(update={"camera_id": OFFLINE, "status": "offline", "reason": "timeout"}),
                  base.model_copy(update={"camera_id": GATE, "kind": "rtsp"})]
        return [s for s in states if cameras is None or s.camera_id in cameras]


def sent(bus: MemoryBus) -> list[DeviceCommand]:
    consumer = bus.consumer([DEVICE_COMMANDS.name], "test")
    out = [DeviceCommand.model_validate_json(m.value) for m in consumer.poll(timeout=0.2)]
    consumer.close()
    return out


def test_ptz_refusals_are_readable_and_nothing_is_sent_for_them(tmp_path: Path) -> None:
    store, bus = LocalStore(tmp_path / "store"), MemoryBus()
    add_users(store)
    ctx = build_context(TubelineConfig(), store=store, search=Devices(), bus=bus, audit_writer="test",
                        api=ApiConfig(cache_dir=str(tmp_path / "cache")))
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        assert client.post(f"/api/cameras/{DOME}/ptz", json={"action": "stop"}).status_code == 403
        login(client, "otto")
        gate = client.post(f"/api/cameras/{GATE}/ptz", json={"action": "move", "pan": 1})
        assert gate.status_code == 409 and "only GB/T 28181 channels" in gate.json()["detail"]
        offline = client.post(f"/api/cameras/{OFFLINE}/ptz", json={"action": "move", "pan": 1})
        assert offline.status_code == 409 and "offline (timeout)" in offline.json()["detail"]
        moved = client.post(f"/api/cameras/{DOME}/ptz", json={"action": "move", "pan": -1, "speed": 90})
        assert moved.status_code == 202, moved.text
    assert [(c.camera_id, c.action, c.pan, c.speed) for c in sent(bus)] == [(DOME, "move", -1, 90)]
    outcomes = [(e["outcome"], e["status"]) for e in tail(store, 10) if e["action"] == "devices.ptz"]
    assert outcomes[-4:] == [("refused", 403), ("invalid", 409), ("failed", 409), ("ok", 200)]


@pytest.mark.parametrize(("burst", "last", "admitted"), [
    ("move", "stop", True),   # the stop of a held arrow always passes
    ("stop", "stop", False),  # a stop with nothing moving counts like any command
    ("move", "move", False),
])
def test_rate_limit_never_blocks_the_stop_after_a_move(burst: str, last: str, admitted: bool) -> None:
    desk = DeviceDesk(None, per_window=3, window_s=60)
    for _ in range(3):
        desk.prepare(DOME, "otto", burst, **({"pan": 1} if burst == "move" else {}))
    params = {"pan": 1} if last == "move" else {}
    if admitted:
        assert desk.prepare(DOME, "otto", last, **params).action == last
        with pytest.raises(RateLimited):  # and only that one stop
            desk.prepare(DOME, "otto", "stop")
    else:
        with pytest.raises(RateLimited):
            desk.prepare(DOME, "otto", last, **params)
    desk.prepare(DOME, "olga", "stop")  # other users are counted apart
