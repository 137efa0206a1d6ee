"""RTSP ingest against Debian's gst-rtsp-server (python3-gi), H.264 and H.265 over TCP and UDP, with the
server killed and restarted mid-stream. TCP runs in-process on the real broker and S3 server; UDP runs
in a loopback-only network namespace (see ``tests/peers/rtsp_scenario.py`` for why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.recordings import segments_between
from pipeline.store import open_store
from schemas.frames import FrameHeader
from schemas.topics import FRAMES
from tests.peers.rtsp import GstRtspServer
from tests.peers.rtsp_scenario import run_kill_restart, scenario_ingest_config, status_events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def connection_events(events: list) -> list[tuple[str, str | None]]:
    return [(e.event, e.reason) for e in events if e.event != "stats"]


def test_tcp_h264_server_killed_and_restarted_ingest_reconnects(real_stack, unique_name: str,
                                                                  tmp_path: Path) -> None:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus, store = open_bus(cfg), open_store(cfg)
    ingest = scenario_ingest_config(recordings={"enabled": True, "segment_s": 2})
    with GstRtspServer(user="admin", password="Adm:n#1") as server:
        result = run_kill_restart(server, path="h264", transport="tcp", bus=bus, store=store, config=cfg,
                                  tmp_dir=tmp_path, ingest=ingest)
    assert result["first_ok"] and result["noticed"] and result["resumed"] and result["stopped"], result
    assert result["opens"] >= 2
    assert result["resumed_s"] < 20
    events = connection_events(status_events(bus, result["camera"], f"{unique_name}-events"))
    online = [i for i, e in enumerate(events) if e[0] == "online"]
    assert len(online) >= 2, events
    between = events[online[0] + 1: online[1]]
    assert between[0][0] == "offline" and ("reconnecting", "network") in between, events
    assert events[-1] == ("offline", "stopped")

    consumer = bus.consumer([FRAMES.name], f"{unique_name}-frames")
    frames = []
    for _ in range(30):
        frames += consumer.poll(timeout=1.0, max_records=500)
        if len(frames) >= result["published"]:
            break
    consumer.close()
    headers = [FrameHeader.from_headers(m.headers) for m in frames]
    assert len(headers) == result["published"] >= 20
    assert [h.sequence for h in headers] == list(range(len(headers)))  # one session across the reconnect
    assert {(h.source_codec, h.width, h.height) for h in headers} == {("h264", 640, 360)}
    times = [h.captured_at for h in headers]
    assert times == sorted(times)

    # The original stream was recorded on both sides of the outage, in playable segments.
    segments = segments_between(store, result["camera"], times[0].replace(second=0, microsecond=0), times[-1])
    assert len(segments) >= 2 and all(s.codec == "h264" and s.keyframes >= 1 for s in segments)
    bus.close()


def test_tcp_h265_with_digest_auth(real_stack, unique_name: str, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus, store = open_bus(cfg), open_store(cfg)
    with GstRtspServer(user="viewer", password="pa ss") as server:
        result = run_kill_restart(server, path="h265", transport="tcp", bus=bus, store=store, config=cfg,
                                  restart=False, tmp_dir=tmp_path)
    assert result["first_ok"] and result["stopped"], result
    consumer = bus.consumer([FRAMES.name], f"{unique_name}-frames")
    frames = []
    for _ in range(20):
        frames += consumer.poll(timeout=1.0, max_records=500)
        if len(frames) >= 10:
            break
    consumer.close()
    assert {FrameHeader.from_headers(m.headers).source_codec for m in frames} == {"hevc"}
    bus.close()


def run_udp_probe(path: str, restart: bool) -> dict:
    cmd = ["unshare", "-n", "--", "sh", "-c",
           f"ip link set lo up && exec {sys.executable} -m tests.peers.rtsp_scenario --path {path}"
           f" --transport udp{' --restart' if restart else ''}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, f"UDP probe failed (unshare needs root/CAP_SYS_ADMIN): {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_udp_h264_server_killed_and_restarted_ingest_reconnects() -> None:
    result = run_udp_probe("h264", restart=True)
    assert result["first_ok"] and result["noticed"] and result["resumed"] and result["stopped"], result
    events = [tuple(e) for e in result["events"] if e[0] != "stats"]
    assert events[0] == ("online", None) and events.count(("online", None)) >= 2, events
    assert ("reconnecting", "network") in events
    assert result["snapshot"]["frames_in"] > result["published"] >= 20


def test_udp_h265() -> None:
    result = run_udp_probe("h265", restart=False)
    assert result["first_ok"] and result["stopped"], result
    assert result["snapshot"]["decode_errors"] == 0
