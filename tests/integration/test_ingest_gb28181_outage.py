"""GB/T 28181 outage handling against SIPp devices on the real broker and S3 server.

A device vanishes (SIPp and its media senders killed: no BYE, no unregister) and comes back as a new SIPp
process with the same ID. The channels go offline with reason ``timeout`` (no data arrived; not
``protocol``), the device goes offline with ``timeout`` (no keepalive), and when the device registers again
its channels are re-INVITEd at once with the backoff reset (the backoff had grown during the outage), the
catalog is queried again, and frames flow within 5 s of the registration. A device that restarts faster
than the media timeout (registers with a new Call-ID while its old sessions are still up) gets the same.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from schemas.cameras import CameraStatus
from schemas.topics import CAMERA_STATUS
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

CHANNELS = (CHANNEL_A, CHANNEL_B)




def _published(w: IngestWorker) -> dict[str, int]:
    return {c: w.runner(c).publisher.counters.published if c in w.runners else 0 for c in CHANNELS}


def _device(w: IngestWorker, work: Path, gb_clip: Path) -> SippDevice:
    assert w.gb is not None
    work.mkdir()
    return SippDevice(platform_port=w.gb.port, device_id=DEVICE, password=PASSWORD, work_dir=work, media_file=gb_clip,
                      keepalive_ms=500).start()


def _recovered(w: IngestWorker, device: SippDevice, call_id: str) -> float:
    """Seconds from the device's new registration to fresh frames on both channels."""
    assert w.gb is not None
    gb = w.gb
    assert wait_for(lambda: DEVICE in gb.devices and gb.devices[DEVICE].online
                    and gb.devices[DEVICE].call_id != call_id, 15), device.log_tail()
    registered = time.monotonic()
    base = _published(w)
    assert wait_for(lambda: all(_published(w)[c] > base[c] + 2 for c in CHANNELS), 15), device.log_tail()
    return time.monotonic() - registered


def test_device_vanishes_and_returns(gb_stack, unique_name: str, gb_clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    cfg, bus, store = gb_stack
    ingest = gb_ingest(keepalive_interval_s=1, keepalive_count=2, media_timeout_s=3)
    # A first retry delay of 3-6 s and a second of 6-12 s: without the reset, recovery would take longer than 5 s.
    ingest = ingest.model_copy(update={"reconnect": ingest.reconnect.model_copy(update={"initial_s": 6.0,
                                                                                         "max_s": 30.0})})
    with Running(IngestWorker(cfg, bus=bus, store=store, ingest_config=ingest)) as w:
        assert w.gb is not None
        first = _device(w, tmp_path / "a", gb_clip)
        try:
            assert wait_for(lambda: all(n >= 5 for n in _published(w).values()), 40), first.log_tail()
            queries = w.gb.counters["catalog_queries"]
            # 1. A restart faster than the media timeout: new Call-ID, old sessions still up but stalled.
            call_id = w.gb.devices[DEVICE].call_id
            first.stop(vanish=True)
            time.sleep(1.5)
            second = _device(w, tmp_path / "b", gb_clip)
        finally:
            first.stop()
        try:
            quick = _recovered(w, second, call_id)
            assert w.gb.counters["catalog_queries"] == queries + 1  # the catalog was queried again
            # 2. A long outage: everything goes offline with the right reasons; the backoff grows meanwhile.
            call_id = w.gb.devices[DEVICE].call_id
            second.stop(vanish=True)
            vanished = time.monotonic()
            assert wait_for(lambda: not any(w.runner(c).state.online for c in CHANNELS), 10)
            offline_after = time.monotonic() - vanished
            # the second retry waits 6-12 s: once it is pending, only the reset can bring recovery under 5 s
            assert wait_for(lambda: (w.runner(CHANNEL_A).state.retry_in_s or 0) > 5, 20), w.runner(CHANNEL_A).state
            third = _device(w, tmp_path / "c", gb_clip)
        finally:
            second.stop()
        try:
            slow = _recovered(w, third, call_id)
            assert w.gb.counters["catalog_queries"] == queries + 2
        finally:
            third.stop()
    assert quick <= 5.0 and slow <= 5.0, (quick, slow)
    assert offline_after <= 3 + 2, offline_after  # the media timeout (3 s) plus polling
    events: dict[str, list[tuple[str, str | None]]] = {c: [] for c in (*CHANNELS, DEVICE)}
    for m in consume(bus, CAMERA_STATUS.name, f"{unique_name}-s", lambda m: len(m) >= 20, timeout=20):
        status = CameraStatus.from_json(m.value)
        if status.camera_id in events and status.event != "stats":
            events[status.camera_id].append((status.event, status.reason))
    for channel in CHANNELS:
        offline = [r for e, r in events[channel] if e == "offline" and r != "stopped"]  # 'stopped': the test ended
        assert offline and set(offline) == {"timeout"}, events[channel]  # never 'protocol': no data arrived
        assert sum(e == "online" for e, _ in events[channel]) >= 3
    assert ("offline", "timeout") in events[DEVICE]
    print(f"recovery after registration: quick restart {quick:.2f} s, after an outage {slow:.2f} s; "  # noqa: T201
          f"channels offline {offline_after:.1f} s after the device vanished")
