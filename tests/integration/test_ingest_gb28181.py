"""GB/T 28181 ingest against SIPp (Debian ``sip-tester``) playing the device with the project's scenarios and
the project's PS-over-RTP sender, on the real broker and S3 server.

Covered: REGISTER with digest and per-device passwords, keepalive, paged Catalog (duplicate page,
SumNum, non-camera nodes) into the camera registry, live INVITE over UDP, TCP passive and TCP active with
the device's own SSRC, H.264 and H.265, PES length 0, RTP loss and reordering counted, BYE from the
platform on stop, playback INVITE ended by the device's BYE, keepalive timeout, SIP over TCP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.recordings import cut_clip, segments_between
from pipeline.store import open_store
from schemas.cameras import CameraStatus
from schemas.frames import FrameHeader
from schemas.topics import CAMERA_STATUS, FRAMES
from tests.peers.media import count_frames, make_video
from tests.peers.rtsp import free_port, free_udp_tcp_port
from tests.peers.sipp import SippDevice
from workers.ingest.gb28181.source import GbSource
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration

DEVICE = "34020000001180000001"
PASSWORD = "Dev-Pa55"
CHANNEL_A = "34020000001320000001"
CHANNEL_B = "34020000001310000002"
ANSWER_SSRC = "0200098765"


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def gb_ingest(*, record: bool = False, **gb: object) -> IngestConfig:
    settings: dict[str, object] = {
        "enabled": True, "sip_port": free_udp_tcp_port(), "devices": {DEVICE: {"password": PASSWORD}},
        "media_port_min": 32000 + (free_port() % 20) * 100, "keepalive_interval_s": 2, "keepalive_count": 2,
        "media_timeout_s": 5, "invite_timeout_s": 5,
    }
    settings["media_port_max"] = int(settings["media_port_min"]) + 99  # type: ignore[call-overload]
    settings.update(gb)
    return IngestConfig.model_validate({
        "analysis_fps": 5, "stats_interval_s": 1, "registry_refresh_s": 1,
        "reconnect": {"initial_s": 0.5, "max_s": 2}, "recordings": {"enabled": record, "segment_s": 2},
        "gb28181": settings,
    })


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gbmedia")
    return make_video(d / "h264.ts", seconds=4, container_args=("-x264-params", "repeat-headers=1"))


@pytest.fixture(scope="module")
def h265(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gbmedia265")
    return make_video(d / "h265.ts", codec="hevc", seconds=4)


class Running:
    """An IngestWorker in a thread, stopped (and checked to stop) at the end."""

    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)

    def __enter__(self) -> IngestWorker:
        self.thread.start()
        assert wait_for(lambda: self.worker.gb is not None and self.worker.gb.transport is not None, 10)
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "ingest worker did not stop"


def consume(bus, topic: str, group: str, until: Callable[[list], bool], timeout: float = 30) -> list:  # noqa: ANN001
    consumer = bus.consumer([topic], group)
    out: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(out):
        out += consumer.poll(timeout=0.5, max_records=1000)
    consumer.close()
    return out


def statuses(bus, group: str, camera: str, until: Callable[[list], bool], timeout: float = 20) -> list:  # noqa: ANN001
    def parsed(msgs: list) -> list[CameraStatus]:
        return [s for s in (CameraStatus.from_json(m.value) for m in msgs) if s.camera_id == camera]

    return parsed(consume(bus, CAMERA_STATUS.name, group, lambda msgs: until(parsed(msgs)), timeout))


@pytest.fixture
def stack(real_stack, unique_name: str) -> Iterator[tuple]:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus, store = open_bus(cfg), open_store(cfg)
    yield cfg, bus, store
    bus.close()


def test_udp_device_register_catalog_live_frames(stack, unique_name: str, h264: Path, tmp_path: Path) -> None:  # noqa: ANN001
    cfg, bus, store = stack
    worker = IngestWorker(cfg, bus=bus, store=store, ingest_config=gb_ingest())
    with Running(worker) as w:
        assert w.gb is not None
        device = SippDevice(platform_port=w.gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                            media_file=h264, ssrc_base=ANSWER_SSRC,
                            sender_opts="--reorder-every 5 --loss-every 301 --wrong-ssrc-every 50")
        with device:
            ok = wait_for(lambda: all(c in w.runners and w.runner(c).publisher.counters.published >= 15
                                      for c in (CHANNEL_A, CHANNEL_B)), 40)
            assert ok, device.log_tail()
            snap = w.runner(CHANNEL_A).snapshot()
            assert device.senders(), "the device's media senders should be running"
        registry = {c.id: c for c in CameraRegistry(store).list()}
        assert set(registry) == {CHANNEL_A, CHANNEL_B}  # the 216 virtual-organisation node is not a camera
        a = registry[CHANNEL_A]
        assert (a.name, a.gb_device_id, a.device_type, a.admin_unit, a.latitude) == ("Gate A", DEVICE, "ipc", "340200",
                                                                                     31.86)
        assert w.gb.counters["catalog_duplicates"] == 2 and w.gb.counters["register_ok"] >= 1
    # The RTP impairments were seen and counted; frames still flowed.
    assert snap.rtp_received > 100 and snap.rtp_lost > 0 and snap.rtp_reordered > 0
    frames = consume(bus, FRAMES.name, f"{unique_name}-f", lambda m: len(m) >= 30)
    headers = [FrameHeader.from_headers(m.headers) for m in frames]
    assert {h.camera_id for h in headers} == {CHANNEL_A, CHANNEL_B}
    assert {(h.source_codec, h.width, h.height) for h in headers} == {("h264", 640, 360)}
    events = statuses(bus, f"{unique_name}-s", DEVICE, lambda s: len(s) >= 1)
    assert events[0].event == "online"
    assert device.senders() == [], "BYE on stop should have stopped every sender"


def test_tcp_sip_h265_tcp_passive_and_active_pes_length_zero(stack, unique_name: str, h265: Path,  # noqa: ANN001
                                                              tmp_path: Path) -> None:
    cfg, bus, store = stack
    registry = CameraRegistry(store)
    registry.put(CameraSpec(id=CHANNEL_A, kind="gb28181", gb_device_id=DEVICE, transport="tcp_passive"))
    registry.put(CameraSpec(id=CHANNEL_B, kind="gb28181", gb_device_id=DEVICE, transport="tcp_active"))
    worker = IngestWorker(cfg, bus=bus, store=store, ingest_config=gb_ingest(record=True), tmp_dir=tmp_path)
    with Running(worker) as w:
        assert w.gb is not None
        with SippDevice(platform_port=w.gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                        transport="t1", media_file=h265, ssrc_base=ANSWER_SSRC, sender_opts="--pes-len0") as device:
            ok = wait_for(lambda: all(c in w.runners and w.runner(c).publisher.counters.published >= 10
                                      for c in (CHANNEL_A, CHANNEL_B)), 40)
            assert ok, device.log_tail()
            assert w.gb.devices[DEVICE].peer.transport == "TCP"
            modes = {s.channel_id: s.receiver.mode for s in w.gb.sessions.sessions.values()}
            assert modes == {CHANNEL_A: "tcp_passive", CHANNEL_B: "tcp_active"}
            assert {s.ssrc for s in w.gb.sessions.sessions.values()} == {int(ANSWER_SSRC)}
        # SIP over TCP: the device's connection closed, so the platform marks it offline (2022 rule).
        assert wait_for(lambda: not w.gb.devices[DEVICE].online, 10)  # type: ignore[union-attr]
    assert CameraRegistry(store).get(CHANNEL_B).transport == "tcp_active"  # the catalog kept the local setting
    frames = consume(bus, FRAMES.name, f"{unique_name}-f", lambda m: len(m) >= 20)
    assert {FrameHeader.from_headers(m.headers).source_codec for m in frames} == {"hevc"}
    # The PS-delivered stream was remuxed into playable segments and a clip can be cut from them.
    now = datetime.now(UTC)
    segments = segments_between(store, CHANNEL_A, now - timedelta(minutes=5), now)
    assert len(segments) >= 2 and {s.codec for s in segments} == {"hevc"}, segments
    clip = cut_clip(store, CHANNEL_A, segments[0].start_dt, segments[-1].end_dt, tmp_path / "gb.mp4")
    assert count_frames(clip.path) == clip.packets >= 25
    events = [(e.event, e.reason) for e in statuses(bus, f"{unique_name}-s", DEVICE,
                                                    lambda s: any(e.event == "offline" for e in s))]
    assert ("offline", "network") in events


def test_playback_ends_with_device_bye_and_keepalive_timeout(stack, unique_name: str, h264: Path,  # noqa: ANN001
                                                              tmp_path: Path) -> None:
    cfg, bus, store = stack
    worker = IngestWorker(cfg, bus=bus, store=store,
                          ingest_config=gb_ingest(auto_enable_channels=False, keepalive_interval_s=1))
    with Running(worker) as w:
        assert w.gb is not None
        device = SippDevice(platform_port=w.gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                            media_file=h264, ssrc_base="1200098765", playback_ms=3000, keepalive_ms=500)
        with device:
            assert wait_for(lambda: DEVICE in w.gb.devices and w.gb.devices[DEVICE].catalogued, 15), device.log_tail()
            end = datetime.now(UTC) - timedelta(hours=1)
            source = GbSource(w.gb, CHANNEL_A, DEVICE, mode="udp", playback=(end - timedelta(minutes=5), end))
            t0 = time.monotonic()
            with source:
                frames = list(source.frames())  # ends by itself when the device sends BYE
            took = time.monotonic() - t0
            assert source.session is None
            assert 2.0 < took < 10.0 and len(frames) >= 40, (took, len(frames))
            assert not w.runners  # auto_enable_channels=False: nothing started on its own
        # SIPp is gone and sends no keepalives: offline after interval x count.
        assert wait_for(lambda: not w.gb.devices[DEVICE].online, 10)  # type: ignore[union-attr]
    events = [(e.event, e.reason) for e in statuses(bus, f"{unique_name}-s", DEVICE,
                                                    lambda s: any(e.event == "offline" for e in s))]
    assert events[0] == ("online", None) and ("offline", "timeout") in events
