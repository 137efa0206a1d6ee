"""MPEG-2 Program Stream muxing and RTP packetisation as GB/T 28181 Annex C wants them (what a device sends):
one PS pack per video frame, system header + PSM on keyframes, PES with the PTS, split into RTP packets of
at most 1400 bytes (PT 96, 90 kHz, one timestamp per frame, marker on the frame's last packet), and RFC 4571
framing for TCP.

Used by the cascade (re-packetising a camera's original stream for a superior platform, no re-encode) and by
the tests' device simulator. Validated by FFmpeg's ``mpeg`` demuxer and by this package's own PS demuxer.
"""

from __future__ import annotations

import struct

STREAM_TYPE = {"h264": 0x1B, "hevc": 0x24, "mpeg4": 0x10}
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
    """One PS pack for one Annex-B access unit (PTS in 90 kHz)."""
    parts = [pack_header(pts)]
    if keyframe and with_psm:
        parts += [system_header(), psm(STREAM_TYPE[codec])]
    parts += pes_packets(au, pts, length0=length0)
    return b"".join(parts)


def rtp_packets(pack: bytes, *, seq: int, timestamp: int, ssrc: int, payload_type: int = 96) -> list[bytes]:
    """The pack split into RTP packets (same timestamp, marker on the last)."""
    chunks = [pack[i:i + MAX_RTP_PAYLOAD] for i in range(0, len(pack), MAX_RTP_PAYLOAD)]
    out = []
    for i, chunk in enumerate(chunks):
        marker = 0x80 if i == len(chunks) - 1 else 0
        out.append(struct.pack("!BBHII", 0x80, marker | payload_type, (seq + i) & 0xFFFF, timestamp & 0xFFFFFFFF,
                               ssrc & 0xFFFFFFFF) + chunk)
    return out


def rfc4571(packet: bytes) -> bytes:
    return struct.pack("!H", len(packet)) + packet


def parameter_sets(au: bytes, codec: str) -> bytes:
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
