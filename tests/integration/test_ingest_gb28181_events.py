"""GB/T 28181 subscriptions and device events against a SIPp device, on the real broker and S3 server.

The platform subscribes to the device's catalog (``Event: Catalog``) and alarms (``Event: presence``) and renews
both in their dialogs before they expire; the device's catalog NOTIFY (one channel added, one deleted) reaches
the registry and the running cameras at once; the device's alarm becomes a ``device_alarm`` alert on the alert
topic (time converted from the device's zone, priority 1 → critical) and the device gets the alarm response;
DeviceInfo and DeviceStatus are queried on registration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.cameras.registry import CameraRegistry
from schemas.alerts import Alert
from schemas.topics import ALERTS
from tests.integration.test_ingest_gb28181 import (
    CHANNEL_A,
    CHANNEL_B,
    DEVICE,
    PASSWORD,
    Running,
    consume,
    gb_ingest,
    wait_for,
)
from tests.peers.sipp import SippDevice
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration

CHANNEL_C = "34020000001320000003"




def _enabled(registry: CameraRegistry, camera_id: str) -> bool | None:
    try:
        return registry.get(camera_id).enabled
    except Exception:  # noqa: BLE001 - not there yet
        return None


def test_catalog_notify_subscription_renewal_alarm_alert_and_device_info(gb_stack, unique_name: str, gb_clip: Path,  # noqa: ANN001
                                                                         tmp_path: Path) -> None:
    cfg, bus, store = gb_stack
    ingest = gb_ingest(subscribe_expires_s=10, time_zone="Asia/Shanghai")
    registry = CameraRegistry(store)
    with Running(IngestWorker(cfg, bus=bus, store=store, ingest_config=ingest)) as w:
        assert w.gb is not None
        device = SippDevice(platform_port=w.gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                            media_file=gb_clip, catalog_notify=True, alarm_at=4, keepalive_ms=500)
        with device:
            # The NOTIFY added channel C (registry, then a running camera) and deleted channel B (disabled, stopped).
            assert wait_for(lambda: _enabled(registry, CHANNEL_C) is True and _enabled(registry, CHANNEL_B) is False,
                            20), device.log_tail()
            assert wait_for(lambda: CHANNEL_C in w.runners and w.runner(CHANNEL_C).publisher.counters.published >= 3
                            and CHANNEL_B not in w.runners and CHANNEL_A in w.runners, 30), device.log_tail()
            assert "gb28181-deleted" in registry.get(CHANNEL_B).tags
            # The alarm was answered with the alarm response.
            assert wait_for(lambda: "response Alarm 777" in device.received(), 15), device.received()
            # Both subscriptions were renewed in their dialogs before expiring (10 s, renewed at 8 s).
            assert wait_for(lambda: {"renewed Catalog", "renewed presence"} <= set(device.received()), 15), \
                device.received()
            assert {"subscribe Catalog 10", "subscribe presence 10"} <= set(device.received())
            assert w.gb.devices[DEVICE].info.get("manufacturer") == "SIPp"
            assert w.gb.devices[DEVICE].info.get("model") == "GB-SIM-2"
            assert wait_for(lambda: w.gb.devices[DEVICE].status.get("online") == "ONLINE", 10)  # type: ignore[union-attr]
            assert w.gb.devices[DEVICE].status.get("record") == "OFF"
            assert w.gb.counters["catalog_notifications"] == 1 and w.gb.counters["alarms"] == 1
    messages = consume(bus, ALERTS.name, f"{unique_name}-alerts", lambda m: len(m) >= 1, timeout=20)
    alerts = [Alert.from_json(m.value) for m in messages]
    assert len(alerts) == 1 and messages[0].key == CHANNEL_A.encode()
    alert = alerts[0]
    assert (alert.alert_type, alert.camera_id, alert.severity) == ("device_alarm", CHANNEL_A, "critical")
    assert alert.occurred_at == datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC)  # 08:00:05 in Asia/Shanghai
    assert alert.details["alarm_method_name"] == "video alarm" and alert.details["alarm_type_name"] == "motion detection"
    assert alert.details["device_id"] == DEVICE and "motion at gate" in alert.message
