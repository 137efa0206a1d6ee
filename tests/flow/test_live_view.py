"""Live view end to end in one process: ingest reads real files → the live hub → the API's WebSocket.

An H.264 file camera must arrive as fragmented MP4 (init segment with an ``avc1`` codec string, then one
``moof``+``mdat`` per frame, byte-identical sample data to the source packets — remuxed, not re-encoded), at
the source frame rate; an MS-MPEG4 file camera (vtest.avi) must arrive as JPEG pictures labelled as a
transcode. Watching is refused (and audited) without the ``live`` permission, outside the scope and from
another origin; every stream leaves a start and an end entry in the audit log with its duration.
"""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.config.ingest import CameraSpec
from pipeline.live.hub import LiveHub
from pipeline.live.remux import boxes
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import FakeAnalyzer, add_users, login, register_cameras, sample_search
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import build_context
from workers.ingest.worker import IngestWorker

VTEST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "vtest.avi"


def h264_file(path: Path, seconds: int = 6) -> Path:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x240:rate=25:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "mpegts", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, LocalStore, LiveHub]]:
    tmp = tmp_path_factory.mktemp("live")
    store = LocalStore(tmp / "store")
    register_cameras(store)
    add_users(store)
    hub = LiveHub()
    cams = [CameraSpec(id="cam-a", kind="file", url=str(h264_file(tmp / "a.ts")), loop=True, record=False),
            CameraSpec(id="cam-c", kind="file", url=str(VTEST), loop=True, record=False)]
    # Ingest gets a store of its own: the API's registry lists these IDs as RTSP cameras (the registry would win).
    ingest = IngestWorker(TubelineConfig(), bus=MemoryBus(), store=LocalStore(tmp / "ingest"), cameras=cams, live=hub)
    runner = threading.Thread(target=ingest.run, daemon=True)
    runner.start()
    ctx = build_context(TubelineConfig(), store=store, search=sample_search(), face_analyzer_factory=FakeAnalyzer,
                        audit_writer="test", api=ApiConfig(cache_dir=str(tmp / "cache"), live_recheck_s=0.5),
                        live=hub)
    with TestClient(create_app(ctx, start_background=False)) as client:
        deadline = time.monotonic() + 20
        while not (hub.state("cam-a").live and hub.state("cam-c").live) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield client, store, hub
    ingest.stop_event.set()
    runner.join(15)


def read_messages(ws, seconds: float) -> tuple[list[dict], list[bytes]]:  # noqa: ANN001
    texts, binaries = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = ws.receive()
        if message.get("text") is not None:
            texts.append(json.loads(message["text"]))
        elif message.get("bytes") is not None:
            binaries.append(message["bytes"])
    return texts, binaries


def test_h264_camera_arrives_as_fragmented_mp4_at_the_source_rate(stack) -> None:  # noqa: ANN001
    client, store, hub = stack
    login(client, "otto")
    sub = hub.subscribe("cam-a")  # the source packets, to compare sample data
    started = time.monotonic()
    with client.websocket_connect("/api/live/cam-a/ws", headers={"origin": "http://testserver"}) as ws:
        texts, binaries = read_messages(ws, 3.0)
    elapsed = time.monotonic() - started
    source = {p.data for p in sub.take()}
    sub.close()
    hello = next(t for t in texts if t["type"] == "hello")
    assert hello["mode"] == "fmp4" and not hello["transcoded"] and hello["mime"].startswith('video/mp4; codecs="avc1.')
    kinds = [b[0] for b in binaries]
    assert kinds[0] == 1 and set(kinds[1:]) == {2}
    init_boxes = [k for k, _ in boxes(binaries[0][17:])[0]]
    assert init_boxes == ["ftyp", "moov"]
    media = binaries[1:]
    assert all([k for k, _ in boxes(m[17:])[0]] == ["moof", "mdat"] for m in media)
    # remuxed, not re-encoded: each mdat holds a source packet's bytes (Annex-B start codes become lengths)
    mdat = boxes(media[-1][17:])[0][1][1][8:]
    assert any(_same_nals(mdat, s) for s in source)
    # at the source rate (25 fps) after the cached GOP, with capture times that advance
    captured = [struct.unpack(">Bdd", m[:17])[1] for m in media]
    assert captured == sorted(captured) and captured[-1] > captured[0]
    assert len(media) >= 25 * (elapsed - 1.5), (len(media), elapsed)
    entries = wait_for_end(store)
    assert [e["action"] for e in entries[-2:]] == ["live.watch", "live.watch.end"]
    assert entries[-1]["user"] == "otto" and entries[-1]["watch"]["duration_s"] >= 2.5
    assert entries[-1]["watch"]["frames"] == len(media)


def wait_for_end(store: LocalStore) -> list[dict]:
    """The live.watch entries once the stream's end entry is written (after the client has gone)."""
    deadline = time.monotonic() + 10
    while True:
        entries = [e for e in tail(store, 50) if e["action"].startswith("live.watch")]
        if entries[-1]["action"] == "live.watch.end" or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


def _same_nals(mdat: bytes, annexb: bytes) -> bool:
    """The length-prefixed NAL units of ``mdat`` equal the Annex-B units of a source packet."""
    from pipeline.live.remux import annexb_nals

    nals, i = [], 0
    while i + 4 <= len(mdat):
        n = int.from_bytes(mdat[i:i + 4], "big")
        nals.append(mdat[i + 4:i + 4 + n])
        i += 4 + n
    src = annexb_nals(annexb)
    return bool(src) and [n for n in nals if n[0] & 0x1F != 9] == [n for n in src if n[0] & 0x1F != 9]


def test_msmpeg4_camera_falls_back_to_jpeg_labelled_as_a_transcode(stack) -> None:  # noqa: ANN001
    client, _, _ = stack
    login(client, "ann")
    with client.websocket_connect("/api/live/cam-c/ws", headers={"origin": "http://testserver"}) as ws:
        texts, binaries = read_messages(ws, 2.5)
    hello = next(t for t in texts if t["type"] == "hello")
    assert hello["mode"] == "jpeg" and hello["transcoded"] and "transcoded" in hello["note"]
    jpegs = [b for b in binaries if b[0] == 3]
    assert len(jpegs) >= 10 and all(b[17:19] == b"\xff\xd8" for b in jpegs)  # vtest is 10 fps


def test_snapshot_list_and_refusals(stack) -> None:  # noqa: ANN001
    client, store, _ = stack
    login(client, "aud")  # auditors may not watch
    assert client.get("/api/live").status_code == 403
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/api/live/cam-a/ws") as ws:
        ws.receive()
    assert tail(store, 1)[0]["action"] == "live.watch" and tail(store, 1)[0]["status"] == 403
    login(client, "ivy")  # units 510104: cam-a, cam-b — not cam-c
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/api/live/cam-c/ws") as ws:
        ws.receive()
    assert tail(store, 1)[0]["status"] == 404
    with pytest.raises(WebSocketDisconnect), \
            client.websocket_connect("/api/live/cam-a/ws", headers={"origin": "http://evil.example"}) as ws:
        ws.receive()
    assert tail(store, 1)[0]["reason"] == "WebSocket from another origin"
    listing = client.get("/api/live").json()
    assert [c["camera_id"] for c in listing["cameras"]] == ["cam-a", "cam-b"]
    assert listing["cameras"][0]["live"] and listing["cameras"][0]["mode"] == "fmp4"
    shot = client.get("/api/live/cam-a/snapshot.jpg")
    assert shot.status_code == 200 and shot.content[:2] == b"\xff\xd8" and "x-captured-at" in shot.headers
    assert client.get("/api/live/cam-c/snapshot.jpg").status_code == 404
