"""Cascade: Tubeline under two superior platforms at once (SIPp as each superior), on the real broker and S3.

Superior A talks SIP over UDP and asks for video over UDP; superior B talks SIP over TCP and asks for video over
TCP (it listens, Tubeline connects, RFC 4571). Each: Tubeline registers with digest (SIPp's verifyauth checks the
response), answers the catalog with exactly the cameras in that superior's scope (GB IDs and civil codes as
they are), keeps alive, and on INVITE forwards the live camera (an H.264 file camera, re-packetised, not
re-encoded) as PS over RTP with the SSRC the superior offered; FFmpeg decodes at least 5 s of it; the
superior's BYE ends the stream.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec, IngestConfig
from tests.integration.test_ingest_gb28181 import Running, wait_for
from tests.peers.rtsp import free_port, free_udp_tcp_port
from tests.peers.sipp import SippSuperior
from workers.ingest.gb28181.rtp import RtpError, parse_rtp
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration

LOCAL_ID = "34020000002000000001"
SHARED = "34020000001320000101"  # civil code 340200: in both scopes
ONLY_B = "11010000001320000102"  # civil code 110100: superior B only
PASSWORDS = {"A": "Up-A-pass", "B": "Up-B-pass"}
SUPERIORS = {"A": ("44010000002000000001", "4401000000"), "B": ("11000000002000000001", "1100000000")}


class MediaSink:
    """The superior's media port: RTP over UDP, or RFC 4571 over a TCP connection Tubeline makes."""

    def __init__(self, tcp: bool) -> None:
        self.tcp = tcp
        self.packets: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if tcp:
            self.sock.listen(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.5)
        conn = None
        buf = b""
        while not self._stop.is_set():
            try:
                if self.tcp and conn is None:
                    conn, _ = self.sock.accept()
                    conn.settimeout(0.5)
                data = conn.recv(65536) if conn is not None else self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            if not self.tcp:
                self.packets.append(data)
                continue
            if not data:
                conn = None
                continue
            buf += data
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                self.packets.append(buf[2:2 + n])
                buf = buf[2 + n:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def ps(self) -> tuple[bytes, set[int]]:
        """The PS byte stream (payloads in sequence order) and the SSRCs seen."""
        rtp = []
        for data in self.packets:
            try:
                rtp.append(parse_rtp(data))
            except RtpError:
                continue
        return b"".join(p.payload for p in rtp), {p.ssrc for p in rtp}


def ffprobe_frames(path: Path) -> dict:
    out = subprocess.run([shutil.which("ffprobe") or "ffprobe", "-v", "error", "-f", "mpeg", "-count_frames",
                          "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,nb_read_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)["streams"][0]



def test_two_superiors_register_get_their_catalogs_and_live_ps_over_udp_and_tcp(gb_stack, gb_clip: Path,  # noqa: ANN001
                                                                              tmp_path: Path) -> None:
    cfg, bus, store = gb_stack
    clip = gb_clip
    registry = CameraRegistry(store)
    registry.put(CameraSpec(id=SHARED, name="East gate", kind="file", url=str(clip), loop=True, admin_unit="340200",
                            latitude=31.86, longitude=117.28))
    registry.put(CameraSpec(id=ONLY_B, name="North road", kind="file", url=str(clip), loop=True, admin_unit="110100",
                            enabled=False))
    registry.put(CameraSpec(id="lobby", kind="file", url=str(clip), loop=True, admin_unit="340200", enabled=False))
    sinks = {"A": MediaSink(tcp=False), "B": MediaSink(tcp=True)}
    port = free_udp_tcp_port("127.0.0.1")
    superiors = {
        name: SippSuperior(tubeline_port=port, superior_id=sid, domain=domain, local_id=LOCAL_ID,
                           password=PASSWORDS[name], channel=SHARED, media_port=sinks[name].port,
                           work_dir=tmp_path / name, transport="u1" if name == "A" else "t1", tcp_media=name == "B")
        for name, (sid, domain) in SUPERIORS.items()}
    for sup in superiors.values():
        sup.start()
    time.sleep(0.5)  # SIPp listening
    links = [
        {"server_id": SUPERIORS["A"][0], "domain": SUPERIORS["A"][1], "host": "127.0.0.1", "port": superiors["A"].port,
         "password": PASSWORDS["A"], "admin_units": ["3402"], "keepalive_s": 1, "retry_s": 1},
        {"server_id": SUPERIORS["B"][0], "domain": SUPERIORS["B"][1], "host": "127.0.0.1", "port": superiors["B"].port,
         "transport": "tcp", "password": PASSWORDS["B"], "camera_ids": [SHARED, ONLY_B], "keepalive_s": 1,
         "retry_s": 1},
    ]
    media_low = 33000 + free_port() % 20 * 100
    ingest = IngestConfig.model_validate({
        "analysis_fps": 2, "registry_refresh_s": 1, "recordings": {"enabled": False},
        "gb28181": {"enabled": True, "sip_port": port, "media_port_min": media_low,
                    "media_port_max": media_low + 99, "superiors": links},
    })
    try:
        with Running(IngestWorker(cfg, bus=bus, store=store, ingest_config=ingest)) as w:
            assert w.gb is not None
            # each superior's dialog ends with its BYE and our 200 (CSeq 21 in the request and in the answer)
            done = wait_for(lambda: all(s.messages().count("CSeq: 21 BYE") >= 2 for s in superiors.values()), 45)
            assert done, {n: s.log_tail() for n, s in superiors.items()}
            registrations = {link.cfg.server_id: link.registrations for link in w.gb.superiors}
    finally:
        for sup in superiors.values():
            sup.stop()
        for sink in sinks.values():
            sink.close()
    for name, sup in superiors.items():
        messages = sup.messages()
        # registered with digest (SIPp's verifyauth accepted it: the scenario answered 200, not 403)
        assert "Authorization: Digest" in messages and "SIP/2.0 403" not in messages
        assert re.search(r"<CmdType>Keepalive</CmdType>", messages), name
        catalog = [b for b in messages.split("----") if "<Response>" in b and "<CmdType>Catalog</CmdType>" in b]
        ids = set(re.findall(r"<Item><DeviceID>([0-9]{20})</DeviceID>", "".join(catalog)))
        expected = {SHARED} if name == "A" else {SHARED, ONLY_B}
        assert ids == expected, (name, ids)
        assert "<CivilCode>340200</CivilCode>" in "".join(catalog) and "<SumNum>" in "".join(catalog)
        ps, ssrcs = sinks[name].ps()
        assert ssrcs == {100000077}, (name, ssrcs)
        out = tmp_path / f"{name}.ps"
        out.write_bytes(ps)
        info = ffprobe_frames(out)
        assert info["codec_name"] == "h264" and info["width"] == 640, info
        assert int(info["nb_read_frames"]) >= 5 * 25, (name, info)  # at least 5 s of 25 fps video
        print(f"superior {name}: {info['nb_read_frames']} frames decoded by FFmpeg")  # noqa: T201
    assert all(n >= 1 for n in registrations.values()), registrations
