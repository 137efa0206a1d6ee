"""A GB/T 28181 media sender written for the tests: a video file → MPEG-2 PS (one pack per frame, system
header + PSM on keyframes) → RTP (PT 96, 90 kHz, same timestamp per frame, marker on the last packet)
over UDP, TCP client (platform passive) or TCP server (platform active), RFC 4571 framing on TCP.

    python tests/peers/ps_sender.py --mode udp --host 127.0.0.1 --port 30000 --ssrc 200001234 --file in.ts

``--out FILE`` writes the PS stream to a file instead (FFmpeg's ``-f mpeg`` demuxer reads it), and
``--pes-len0``, ``--no-psm``, ``--loss-every``, ``--reorder-every``, ``--garbage-every`` and
``--wrong-ssrc-every`` make it misbehave the ways real devices and networks do. The SIPp device scenario
starts it with ``<exec>``; it writes its PID to ``--pidfile`` so the scenario (and the test) can stop it.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

STREAM_TYPE = {"h264": 0x1B, "hevc": 0x24}
MAX_RTP_PAYLOAD = 1400
_CRC_TABLE: list[int] = []


def crc32_mpeg(data: bytes) -> int:
    if not _CRC_TABLE:
        for i in range(256):
            c = i << 24
            for _ in range(8):
                c = ((c << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if c & 0x80000000 else (c << 1) & 0xFFFFFFFF
            _CRC_TABLE.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


def pack_header(scr: int, mux_rate: int = 6106) -> bytes:
    return bytes([
        0, 0, 1, 0xBA,
        0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
        (scr >> 20) & 0xFF,
        ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
        (scr >> 5) & 0xFF,
        ((scr << 3) & 0xF8) | 0x04,
        0x01,
        (mux_rate >> 14) & 0xFF, (mux_rate >> 6) & 0xFF, ((mux_rate << 2) & 0xFC) | 0x03,
        0xF8,
    ])


def system_header(rate_bound: int = 6106) -> bytes:
    body = bytes([
        0x80 | ((rate_bound >> 15) & 0x7F), (rate_bound >> 7) & 0xFF, ((rate_bound << 1) & 0xFE) | 0x01,
        0x04, 0xE1, 0xFF,
        0xE0, 0xE0 | 0x03, 0xFF,  # video stream E0, buffer bound scale 1, size 0x3FF × 1024
    ])
    return b"\x00\x00\x01\xbb" + struct.pack("!H", len(body)) + body


def psm(stream_type: int) -> bytes:
    entries = bytes([stream_type, 0xE0, 0, 0])
    body = bytes([0xE0, 0xFF]) + struct.pack("!H", 0) + struct.pack("!H", len(entries)) + entries
    head = b"\x00\x00\x01\xbc" + struct.pack("!H", len(body) + 4) + body
    return head + struct.pack("!I", crc32_mpeg(head))


def _ts_bytes(prefix: int, ts: int) -> bytes:
    return bytes([
        (prefix << 4) | ((ts >> 29) & 0x0E) | 0x01, (ts >> 22) & 0xFF, ((ts >> 14) & 0xFE) | 0x01,
        (ts >> 7) & 0xFF, ((ts << 1) & 0xFE) | 0x01,
    ])


def pes_packets(payload: bytes, pts: int, *, length0: bool = False, max_pes: int = 0xFF80) -> list[bytes]:
    """Video PES for one access unit: the first carries the PTS; long AUs are split (or length 0)."""
    first = bytes([0x80, 0x80, 5]) + _ts_bytes(0x2, pts & ((1 << 33) - 1))
    if length0:
        return [b"\x00\x00\x01\xe0\x00\x00" + first + payload]
    out = []
    chunk = max_pes - len(first)
    header = first
    while True:
        part, payload = payload[:chunk], payload[chunk:]
        out.append(b"\x00\x00\x01\xe0" + struct.pack("!H", len(header) + len(part)) + header + part)
        if not payload:
            return out
        header = bytes([0x80, 0x00, 0])
        chunk = max_pes - len(header)


def ps_pack(au: bytes, pts: int, codec: str, keyframe: bool, *, length0: bool = False, with_psm: bool = True) -> bytes:
    parts = [pack_header(pts)]
    if keyframe and with_psm:
        parts += [system_header(), psm(STREAM_TYPE[codec])]
    parts += pes_packets(au, pts, length0=length0)
    return b"".join(parts)


def rtp_packets(pack: bytes, *, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    chunks = [pack[i:i + MAX_RTP_PAYLOAD] for i in range(0, len(pack), MAX_RTP_PAYLOAD)]
    out = []
    for i, chunk in enumerate(chunks):
        marker = 0x80 if i == len(chunks) - 1 else 0
        out.append(struct.pack("!BBHII", 0x80, marker | 96, (seq + i) & 0xFFFF, timestamp & 0xFFFFFFFF,
                               ssrc & 0xFFFFFFFF) + chunk)
    return out


def _param_sets(au: bytes, codec: str) -> bytes:
    """Annex-B parameter-set NAL units (SPS/PPS, and VPS for H.265) found in ``au``."""
    wanted = {7, 8} if codec == "h264" else {32, 33, 34}
    out = []
    starts = [i for i in range(len(au) - 3) if au[i:i + 3] == b"\x00\x00\x01"]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(au)
        while end > start and au[end - 1] == 0 and n + 1 < len(starts):
            end -= 1
        header = au[start + 3] if start + 3 < len(au) else 0
        kind = header & 0x1F if codec == "h264" else (header >> 1) & 0x3F
        if kind in wanted:
            out.append(b"\x00\x00\x00\x01" + au[start + 3:end])
    return b"".join(out)


def access_units(path: str, loop: bool) -> Iterator[tuple[bytes, int, bool, str, float]]:
    """(Annex-B AU with parameter sets on every keyframe, pts 90 kHz, keyframe, codec, seconds)."""
    offset = 0
    params = b""
    while True:
        with av.open(path) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            tb = stream.time_base or Fraction(1, 90000)
            bsf = None
            last = 0
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                data = bytes(packet)
                if not data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
                    if bsf is None:
                        bsf = av.bitstream.BitStreamFilterContext(f"{codec}_mp4toannexb", stream)
                    data = b"".join(bytes(p) for p in bsf.filter(packet))
                if packet.is_keyframe:
                    found = _param_sets(data, codec)
                    if found:
                        params = found
                    elif params:
                        data = params + data
                pts = round(float(packet.pts * tb) * 90000) + offset
                last = max(last, pts)
                yield data, pts, bool(packet.is_keyframe), codec, float(packet.pts * tb)
        if not loop:
            return
        offset = last + 3600


class Link:
    """Where RTP goes: UDP datagrams, or RFC 4571 frames on a TCP connection (client or server side)."""

    def __init__(self, mode: str, host: str, port: int, connect_timeout: float = 10.0) -> None:
        self.mode = mode
        self.sock: socket.socket
        if mode == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.addr = (host, port)
        elif mode == "tcp-connect":
            deadline = time.monotonic() + connect_timeout
            while True:
                try:
                    self.sock = socket.create_connection((host, port), timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        else:  # tcp-listen: the platform connects to us (its TCP active mode)
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(1)
            server.settimeout(connect_timeout)
            self.sock, _ = server.accept()
            server.close()

    def send(self, packet: bytes) -> None:
        if self.mode == "udp":
            self.sock.sendto(packet, self.addr)
        else:
            self.sock.sendall(struct.pack("!H", len(packet)) + packet)


def _impair(packets: list[bytes], args: argparse.Namespace, counter: list[int]) -> list[bytes]:
    out: list[bytes] = []
    for packet in packets:
        counter[0] += 1
        n = counter[0]
        if args.loss_every and n % args.loss_every == 0:
            continue
        if args.garbage_every and n % args.garbage_every == 0:
            out.append(random.randbytes(random.randint(1, 1200)))
        if args.wrong_ssrc_every and n % args.wrong_ssrc_every == 0:
            out.append(packet[:8] + struct.pack("!I", 0x0BADBEEF) + packet[12:])
        out.append(packet)
    counter[1] += 1  # frames
    if args.reorder_every and len(out) >= 2 and counter[1] % args.reorder_every == 0:
        out[0], out[1] = out[1], out[0]
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--mode", choices=["udp", "tcp-connect", "tcp-listen"], default="udp")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ssrc", type=int, default=0)
    p.add_argument("--out", help="write the PS stream to this file instead of sending RTP")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--seconds", type=float, default=60.0, help="stop after this long (always stops)")
    p.add_argument("--fast", action="store_true", help="no real-time pacing")
    p.add_argument("--speed", type=float, default=1.0, help="pace at this many times real time (a download)")
    p.add_argument("--no-loop", action="store_true", help="play the file once even with --loop")
    p.add_argument("--pes-len0", action="store_true", help="PES_packet_length 0 for video (Hikvision style)")
    p.add_argument("--no-psm", action="store_true")
    p.add_argument("--loss-every", type=int, default=0)
    p.add_argument("--reorder-every", type=int, default=0)
    p.add_argument("--garbage-every", type=int, default=0)
    p.add_argument("--wrong-ssrc-every", type=int, default=0)
    p.add_argument("--garbage-only", action="store_true", help="send random bytes, never valid media")
    p.add_argument("--garbage-ps", action="store_true", help="valid RTP (right SSRC) carrying random bytes, not PS")
    p.add_argument("--pidfile")
    args = p.parse_args()
    if args.pidfile:
        Path(args.pidfile).write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out = open(args.out, "wb") if args.out else None  # noqa: SIM115
    link = None if out else Link(args.mode, args.host, args.port)
    start = time.monotonic()
    first_s: float | None = None
    seq = random.randint(0, 65535)
    counter = [0, 0]
    for au, pts, key, codec, seconds in access_units(args.file, args.loop and not args.no_loop):
        if time.monotonic() - start > args.seconds:
            break
        if not args.fast:
            first_s = seconds if first_s is None else first_s
            delay = start + (seconds - first_s) / max(args.speed, 0.01) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        pack = ps_pack(au, pts, codec, key, length0=args.pes_len0, with_psm=not args.no_psm)
        if out is not None:
            out.write(pack)
            continue
        assert link is not None
        if args.garbage_only:
            packets = [random.randbytes(random.randint(12, 1400)) for _ in range(3)]
        elif args.garbage_ps:
            packets = rtp_packets(random.randbytes(len(pack)), seq=seq, timestamp=pts, ssrc=args.ssrc)
            seq += len(packets)
        else:
            packets = rtp_packets(pack, seq=seq, timestamp=pts, ssrc=args.ssrc)
            seq += len(packets)
        for packet in _impair(packets, args, counter):
            try:
                link.send(packet)
            except OSError:
                return 0  # the platform closed the connection (BYE): done
    if out is not None:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
