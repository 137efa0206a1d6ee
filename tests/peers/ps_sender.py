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

from workers.ingest.gb28181.psmux import parameter_sets as _param_sets
from workers.ingest.gb28181.psmux import ps_pack, rtp_packets


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
