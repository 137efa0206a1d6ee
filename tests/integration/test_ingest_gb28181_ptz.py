"""PTZ and presets through the API to a GB/T 28181 device (SIPp), on the real broker and S3 server.

An operator's PTZ requests (move left, stop, call preset 3, home position) are audited, travel as device
commands over Kafka to the ingest worker that holds the device, and arrive at the device as DeviceControl
MESSAGEs with the standard 8-byte PTZ codes. An investigator may not steer cameras (403); an operator who
sends too many commands for one camera gets 429 with Retry-After (the window is widened for the test so a
slow machine cannot spread the burst over it). The device's recordings asked for through
the API land in the 'on device' spans the API reads back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.cameras.registry import CameraRegistry
from pipeline.config.api import ApiConfig
from tests.integration.test_ingest_gb28181 import CHANNEL_A, DEVICE, PASSWORD, Running, gb_ingest, wait_for
from tests.peers.sipp import SippDevice
from tests.unit.test_api_support import FakeSearch, add_users, login
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import build_context
from workers.api.devices import DeviceDesk
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration



def test_operator_steers_a_ptz_camera_through_the_api(gb_stack, tmp_path: Path) -> None:  # noqa: ANN001
    cfg, bus, store = gb_stack
    add_users(store)
    ingest = gb_ingest(auto_enable_channels=False, time_zone="Asia/Shanghai")
    ctx = build_context(cfg, store=store, search=FakeSearch([]), bus=bus, audit_writer="ptz-test",
                        api=ApiConfig(cache_dir=str(tmp_path / "cache")))
    ctx.devices = DeviceDesk(bus, per_window=8, window_s=120)  # a window no slow machine outruns
    with Running(IngestWorker(cfg, bus=bus, store=store, ingest_config=ingest)) as w, \
            TestClient(create_app(ctx, start_background=False)) as api:
        gb = w.gb
        assert gb is not None
        with SippDevice(platform_port=gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path) as device:
            assert wait_for(lambda: CameraRegistry(store).list() and DEVICE in gb.devices
                            and gb.devices[DEVICE].catalogued, 15), device.log_tail()
            login(api, "ann")  # investigator: no PTZ
            assert api.post(f"/api/cameras/{CHANNEL_A}/ptz", json={"action": "stop"}).status_code == 403
            login(api, "otto")  # operator
            for body in ({"action": "move", "pan": -1, "speed": 128}, {"action": "stop"},
                         {"action": "preset_call", "preset": 3}, {"action": "home", "preset": 3, "reset_s": 30}):
                response = api.post(f"/api/cameras/{CHANNEL_A}/ptz", json=body)
                assert response.status_code == 202, response.text
            assert wait_for(lambda: sum(line.startswith("control") for line in device.received()) >= 4, 20), \
                device.received()
            controls = [line.split()[1:] for line in device.received() if line.startswith("control")]
            # move left at 128, stop, call preset 3; then the home position (a HomePosition element, no PTZCmd)
            assert controls == [["A50F010280000037"], ["A50F0100000000B5"], ["A50F01820003003A"], []], controls
            # preset_call needs a preset; moves are rate-limited per user and camera
            assert api.post(f"/api/cameras/{CHANNEL_A}/ptz", json={"action": "preset_call"}).status_code == 422

            # The device's recordings of a morning, asked for through the API, then read back for the timeline.
            start = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
            asked = api.post(f"/api/cameras/{CHANNEL_A}/device-recordings",
                             json={"action": "refresh", "start": start.isoformat(),
                                   "end": (start + timedelta(hours=4)).isoformat()})
            assert asked.status_code == 202, asked.text

            def spans() -> list:
                got = api.get(f"/api/cameras/{CHANNEL_A}/device-recordings",
                              params={"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()})
                assert got.status_code == 200, got.text
                return got.json()["spans"]

            assert wait_for(lambda: len(spans()) == 3, 20)
            assert [s["kind"] for s in spans()] == ["time", "time", "alarm"]

            # 8 commands per user and camera in the window: 5 were sent, so 3 more pass and then 429
            burst = [api.post(f"/api/cameras/{CHANNEL_A}/ptz", json={"action": "stop"}) for _ in range(5)]
            limited = [r for r in burst if r.status_code == 429]
            assert burst[0].status_code == 202 and limited, [r.status_code for r in burst]
            assert int(limited[0].headers["Retry-After"]) >= 1
            assert [r.status_code for r in burst] == [202, 202, 202, 429, 429]
    ctx.stop()
    actions = [(e["action"], e["user"], e["status"]) for e in tail(store, 60)]
    assert ("devices.ptz", "ann", 403) in actions and ("devices.ptz", "otto", 429) in actions
    assert sum(a == ("devices.ptz", "otto", 200) for a in actions) >= 4
    assert any(a[0] == "devices.recordings" for a in actions)
