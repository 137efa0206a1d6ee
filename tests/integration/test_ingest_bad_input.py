"""Bad input never crashes or hangs ingest: each case gives a clear error and a status event.

Wrong GB password, unknown GB device, malformed SIP, garbage RTP and garbage PS, truncated and
non-video files, unreachable and silent RTSP servers, wrong RTSP credentials. Real peers (SIPp,
gst-rtsp-server), real broker and S3 server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.bus import open_bus
from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.store import open_store
from schemas.cameras import CameraStatus
from schemas.topics import CAMERA_STATUS
from tests.integration.test_ingest_gb28181 import DEVICE, PASSWORD, Running, gb_ingest
from tests.peers.media import make_video
from tests.peers.rtsp import GstRtspServer, free_port
from tests.peers.sipp import SippDevice
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration

OTHER_DEVICE = "34020000001180000099"


@pytest.fixture
def stack(real_stack, unique_name: str) -> Iterator[tuple]:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus, store = open_bus(cfg), open_store(cfg)
    yield cfg, bus, store
    bus.close()


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def events_for(bus, group: str, camera: str, until: Callable[[list[CameraStatus]], bool],  # noqa: ANN001
               timeout: float = 30) -> list[CameraStatus]:
    return collect(bus, group, [camera], until, timeout)[camera]


def collect(bus, group: str, cameras: list[str], until: Callable[[list[CameraStatus]], bool],  # noqa: ANN001
            timeout: float = 30) -> dict[str, list[CameraStatus]]:
    """Status events per camera, read until ``until`` holds for every camera (or the timeout)."""
    consumer = bus.consumer([CAMERA_STATUS.name], group)
    found: dict[str, list[CameraStatus]] = {c: [] for c in cameras}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not all(until(evs) for evs in found.values()):
            for m in consumer.poll(timeout=0.5, max_records=1000):
                status = CameraStatus.from_json(m.value)
                if status.camera_id in found:
                    found[status.camera_id].append(status)
    finally:
        consumer.close()
    return found


def offline_with(reason: str) -> Callable[[list[CameraStatus]], bool]:
    return lambda evs: any(e.event == "offline" and e.reason == reason for e in evs)


def first_offline(events: list[CameraStatus], reason: str) -> CameraStatus:
    return next(e for e in events if e.event == "offline" and e.reason == reason)


def run_cameras(cfg, bus, store, cameras: list[CameraSpec], seconds: float, **ingest: object) -> IngestWorker:  # noqa: ANN001
    settings: dict[str, object] = {"rtsp": {"open_timeout_s": 3, "read_timeout_s": 3},
                                   "reconnect": {"initial_s": 0.5, "max_s": 1}, "recordings": {"enabled": False}}
    settings.update(ingest)
    worker = IngestWorker(cfg, bus=bus, store=store, cameras=cameras, ingest_config=IngestConfig.model_validate(settings))
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    time.sleep(seconds)
    worker.stop()
    thread.join(30)
    assert not thread.is_alive(), "ingest did not stop"
    assert worker.error is None
    return worker


# -- GB/T 28181 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("device_id", "password", "reason", "words"), [
    (DEVICE, "not-the-password", "auth", "wrong password"),
    (OTHER_DEVICE, "anything", "not_found", "unknown device"),
])
def test_gb_refused_registration(stack, unique_name: str, tmp_path: Path, device_id: str, password: str,  # noqa: ANN001
                                 reason: str, words: str) -> None:
    cfg, bus, store = stack
    worker = IngestWorker(cfg, bus=bus, store=store, ingest_config=gb_ingest())
    with Running(worker) as w:
        assert w.gb is not None
        device = SippDevice(platform_port=w.gb.port, device_id=device_id, password=password, work_dir=tmp_path,
                            scenario="gb_device_wrong_password.xml", ooc=None, timeout_s=20)
        with device:
            rc = device.wait(25)
        assert rc == 0, device.log_tail()  # the scenario passes only if the platform answered 403
        assert device_id not in w.gb.devices
    event = first_offline(events_for(bus, f"{unique_name}-s", device_id, offline_with(reason)), reason)
    assert words in event.detail and password not in event.detail


def test_gb_malformed_sip_is_answered_or_dropped_and_the_platform_keeps_working(stack, unique_name: str,  # noqa: ANN001
                                                                                 tmp_path: Path, testdata: Path) -> None:
    cfg, bus, store = stack
    worker = IngestWorker(cfg, bus=bus, store=store, ingest_config=gb_ingest(catalog_on_register=False))
    with Running(worker) as w:
        assert w.gb is not None
        port = w.gb.port
        junk = [
            b"\x00\xff garbage \x01",
            b"NOT SIP AT ALL\r\n\r\n",
            (f"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
             f"From: <sip:{OTHER_DEVICE}@3402000000>;tag=1\r\nTo: <sip:{OTHER_DEVICE}@3402000000>\r\n"
             f"Call-ID: x@y\r\nCSeq: one REGISTER\r\nContent-Length: 0\r\n\r\n").encode(),
            b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999\r\nCall-ID: 1\r\nCSeq: 1 MESSAGE\r\n"
            b"From: <sip:1@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 999\r\n\r\n<short/>",
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            for datagram in junk:
                udp.sendto(datagram, ("127.0.0.1", port))
        with socket.create_connection(("127.0.0.1", port), timeout=3) as tcp:
            tcp.sendall(b"INVITE nonsense\r\n" * 10 + b"\r\n\r\n")
            tcp.settimeout(3)
            closed = tcp.recv(100) == b""  # the platform drops a connection that speaks no SIP
        assert closed
        assert wait_for(lambda: w.gb.counters["malformed"] >= 5, 5), w.gb.counters  # type: ignore[union-attr]
        with SippDevice(platform_port=port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                        ooc=None, keepalives=2, keepalive_ms=200, timeout_s=20) as device:
            assert device.wait(25) == 0, device.log_tail()
    event = first_offline(events_for(bus, f"{unique_name}-s", OTHER_DEVICE, offline_with("protocol")), "protocol")
    assert "malformed SIP" in event.detail and "CSeq" in event.detail


@pytest.mark.parametrize("garbage", ["--garbage-only", "--garbage-ps"])
def test_gb_garbage_media_reports_protocol_and_retries(stack, unique_name: str, tmp_path: Path,  # noqa: ANN001
                                                       testdata: Path, garbage: str) -> None:
    cfg, bus, store = stack
    channel = "34020000001320000001"
    CameraRegistry(store).put(CameraSpec(id=channel, kind="gb28181", gb_device_id=DEVICE))
    worker = IngestWorker(cfg, bus=bus, store=store,
                          ingest_config=gb_ingest(auto_enable_channels=False, media_timeout_s=3))
    media = make_video(tmp_path / "m.ts", seconds=2)
    with Running(worker) as w:
        assert w.gb is not None
        with SippDevice(platform_port=w.gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                        media_file=media, sender_opts=garbage) as device:
            ok = wait_for(lambda: channel in w.runners and w.runner(channel).state.last_reason == "protocol", 30)
            assert ok, device.log_tail()
            assert w.runner(channel).publisher.counters.published == 0
    events = events_for(bus, f"{unique_name}-s", channel, offline_with("protocol"))
    event = first_offline(events, "protocol")
    assert "no decodable picture" in event.detail and "RTP packets" in event.detail
    assert any(e.event == "reconnecting" for e in events)


# -- files ----------------------------------------------------------------------------------------------
def test_truncated_and_non_video_files(stack, unique_name: str, tmp_path: Path) -> None:  # noqa: ANN001
    cfg, bus, store = stack
    whole = make_video(tmp_path / "whole.mp4", seconds=4, container_args=("-movflags", "+faststart"))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    headless = tmp_path / "headless.mp4"
    headless.write_bytes(make_video(tmp_path / "tail.mp4", seconds=4).read_bytes()[: whole.stat().st_size // 2])
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(b"\x17" * 5000)
    cams = [CameraSpec(id=name, kind="file", url=str(path), realtime=False)
            for name, path in (("truncated", truncated), ("headless", headless), ("noise", noise),
                               ("missing", tmp_path / "nope.mp4"))]
    run_cameras(cfg, bus, store, cams, seconds=4, overflow="block")
    expected = {"truncated": ("eof", "truncated"), "headless": ("codec", "truncated or not a video"),
                "noise": ("codec", "not a video"), "missing": ("not_found", "does not exist")}
    found = collect(bus, f"{unique_name}-s", list(expected),
                    lambda evs: any(e.event == "offline" and e.reason != "stopped" for e in evs), timeout=15)
    for cam, (reason, words) in expected.items():
        event = first_offline(found[cam], reason)
        assert words in event.detail, event


# -- RTSP -----------------------------------------------------------------------------------------------
def test_rtsp_unreachable_silent_and_wrong_credentials(stack, unique_name: str) -> None:  # noqa: ANN001
    cfg, bus, store = stack
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        with GstRtspServer(user="admin", password="right-one") as server:
            cams = [
                CameraSpec(id="refused", kind="rtsp", url=f"rtsp://127.0.0.1:{free_port()}/h264"),
                CameraSpec(id="silent", kind="rtsp", url=f"rtsp://127.0.0.1:{silent.getsockname()[1]}/h264"),
                CameraSpec(id="badpass", kind="rtsp", url=server.url("h264"), username="admin",
                           password=SecretStr("wrong-one")),
                CameraSpec(id="nopath", kind="rtsp", url=server.url("nothing-here"), username="admin",
                           password=SecretStr("right-one")),
            ]
            worker = run_cameras(cfg, bus, store, cams, seconds=8)
    finally:
        silent.close()
    assert all(r.state.opens == 0 and r.state.attempts >= 1 for _, r in worker.runners.values())
    expected = {"refused": ("network", "connection refused"), "silent": ("timeout", "timed out"),
                "badpass": ("auth", "authentication failed"), "nopath": ("not_found", "not found")}
    found = collect(bus, f"{unique_name}-s", list(expected),
                    lambda evs: any(e.event == "reconnecting" for e in evs), timeout=15)
    for cam, (reason, words) in expected.items():
        events = found[cam]
        event = first_offline(events, reason)
        assert words in event.detail and "wrong-one" not in event.detail and "right-one" not in event.detail
        assert not any(e.event == "online" for e in events)
        assert any(e.event == "reconnecting" and e.attempt == 1 for e in events)
