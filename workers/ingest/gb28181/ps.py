"""MPEG-2 Program Stream demuxing for GB/T 28181 (Annex C): packs, system header, PSM, PES → access units.

Handles MPEG-2 and MPEG-1 pack headers, the PSM (stream types 0x1B H.264, 0x24 H.265, 0x10 MPEG-4,
0x80 SVAC), PES with and without ``PES_packet_length`` (length 0 runs to the next system start code
or to the end of the RTP frame, as Hikvision sends it), private/padding/audio streams (skipped), and
garbage between units (skipped and counted). Without a PSM (or when it lies) the codec is sniffed
from NAL unit types. Access units are grouped by PTS: a PES without PTS continues the current one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

STREAM_TYPES = {0x1B: "h264", 0x24: "hevc", 0x10: "mpeg4", 0x80: "svac", 0x02: "mpeg2video"}
_SYSTEM_CODES = frozenset(range(0xB9, 0x100))
MAX_BUFFER = 8 << 20


@dataclass(frozen=True)
class Pes:
    stream_id: int
    pts: int | None
    dts: int | None
    payload: bytes


@dataclass
class PsStats:
    packs: int = 0
    psm: int = 0
    pes: int = 0
    skipped_bytes: int = 0
    errors: int = 0


def _timestamp(b: bytes | bytearray, i: int) -> int:
    return (((b[i] >> 1) & 0x07) << 30) | (b[i + 1] << 22) | ((b[i + 2] >> 1) << 15) | (b[i + 3] << 7) | (b[i + 4] >> 1)


class PsDemuxer:
    """Incremental PS parser: ``feed`` bytes, ``flush`` at the end of an RTP frame."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stream_types: dict[int, int] = {}
        self.stats = PsStats()

    def feed(self, data: bytes) -> list[Pes]:
        self._buf += data
        if len(self._buf) > MAX_BUFFER:  # never grow without bound on garbage
            self.stats.skipped_bytes += len(self._buf)
            self.stats.errors += 1
            self._buf.clear()
        return self._parse(final=False)

    def flush(self) -> list[Pes]:
        out = self._parse(final=True)
        if self._buf:
            self.stats.skipped_bytes += len(self._buf)
            self._buf.clear()
        return out

    def reset(self) -> None:
        self._buf.clear()

    def _parse(self, final: bool) -> list[Pes]:
        out: list[Pes] = []
        buf = self._buf
        while True:
            start = buf.find(b"\x00\x00\x01")
            if start < 0:
                keep = 2 if not final else 0
                self.stats.skipped_bytes += max(0, len(buf) - keep)
                del buf[:max(0, len(buf) - keep)]
                return out
            if start:
                self.stats.skipped_bytes += start
                del buf[:start]
            if len(buf) < 4:
                return out
            code = buf[3]
            used = self._unit(code, final, out)
            if used is None:
                return out
            del buf[:used]

    def _unit(self, code: int, final: bool, out: list[Pes]) -> int | None:
        """Bytes consumed by the unit at the start of the buffer, or None to wait for more data."""
        buf = self._buf
        if code == 0xBA:
            if len(buf) < 14:
                return None if not final else len(buf)
            if buf[4] & 0xC0 == 0x40:
                size = 14 + (buf[13] & 0x07)
            elif buf[4] & 0xF0 == 0x20:
                size = 12
            else:
                self.stats.errors += 1
                return 4
            self.stats.packs += 1
            return size if len(buf) >= size else (None if not final else len(buf))
        if code == 0xB9:
            return 4
        if code not in _SYSTEM_CODES:
            self.stats.errors += 1  # an elementary-stream start code outside any PES
            return 3
        if len(buf) < 6:
            return None if not final else len(buf)
        (length,) = struct.unpack_from("!H", buf, 4)
        if length == 0 and 0xE0 <= code <= 0xEF:
            end = self._next_system_code(6)
            if end is None:
                if not final:
                    return None
                end = len(buf)
            self._pes(code, 6, end, out)
            return end
        end = 6 + length
        if len(buf) < end:
            return None if not final else len(buf)
        if code == 0xBC:
            self._psm(end)
        elif 0xE0 <= code <= 0xEF:
            self._pes(code, 6, end, out)
        return end

    def _next_system_code(self, offset: int) -> int | None:
        buf = self._buf
        pos = offset
        while True:
            pos = buf.find(b"\x00\x00\x01", pos)
            if pos < 0 or pos + 3 >= len(buf):
                return None
            if buf[pos + 3] in _SYSTEM_CODES:
                return pos
            pos += 3

    def _psm(self, end: int) -> None:
        buf = self._buf
        self.stats.psm += 1
        if end < 12:
            self.stats.errors += 1
            return
        (info_len,) = struct.unpack_from("!H", buf, 8)
        pos = 10 + info_len
        if pos + 2 > end:
            self.stats.errors += 1
            return
        pos += 2  # elementary_stream_map_length: trust the PSM length instead (as ZLMediaKit does)
        while pos + 4 <= end - 4:
            stream_type, stream_id, es_len = buf[pos], buf[pos + 1], struct.unpack_from("!H", buf, pos + 2)[0]
            self.stream_types[stream_id] = stream_type
            pos += 4 + es_len

    def _pes(self, code: int, start: int, end: int, out: list[Pes]) -> None:
        buf = self._buf
        pts = dts = None
        if end - start >= 3 and buf[start] & 0xC0 == 0x80:  # MPEG-2 PES header
            flags, hdr_len = buf[start + 1], buf[start + 2]
            payload = start + 3 + hdr_len
            if flags & 0x80 and start + 8 <= end:
                pts = _timestamp(buf, start + 3)
            if flags & 0x40 and start + 13 <= end:
                dts = _timestamp(buf, start + 8)
        else:  # MPEG-1 PES header: stuffing, optional STD buffer, PTS/DTS
            pos = start
            while pos < end and buf[pos] == 0xFF:
                pos += 1
            if pos < end and buf[pos] & 0xC0 == 0x40:
                pos += 2
            kind = buf[pos] & 0xF0 if pos < end else None
            if (kind == 0x20 and pos + 5 > end) or (kind == 0x30 and pos + 10 > end):
                self.stats.errors += 1  # a PTS/DTS cut off by the end of the packet
                return
            if kind == 0x20:
                pts, pos = _timestamp(buf, pos), pos + 5
            elif kind == 0x30:
                pts, dts, pos = _timestamp(buf, pos), _timestamp(buf, pos + 5), pos + 10
            elif pos < end and buf[pos] == 0x0F:
                pos += 1
            payload = pos
        if payload > end:
            self.stats.errors += 1
            return
        self.stats.pes += 1
        out.append(Pes(code, pts, dts, bytes(buf[payload:end])))


def iter_nal_types(data: bytes, limit: int = 64) -> list[tuple[int, int]]:
    """(first, second) header bytes of the NAL units in an Annex-B buffer."""
    out: list[tuple[int, int]] = []
    pos = 0
    while len(out) < limit:
        pos = data.find(b"\x00\x00\x01", pos)
        if pos < 0 or pos + 4 >= len(data):
            return out
        out.append((data[pos + 3], data[pos + 4]))
        pos += 3
    return out


def sniff_codec(data: bytes) -> str | None:
    """``hevc`` if a VPS/SPS of H.265 is present, ``h264`` if an H.264 SPS is, else None."""
    nals = iter_nal_types(data)
    if any((a >> 1) & 0x3F in (32, 33) and a & 0x81 == 0 and b in (0x01,) for a, b in nals):
        return "hevc"
    if any(a & 0x9F == 0x07 and a & 0x60 for a, _ in nals):
        return "h264"
    return None


def is_keyframe(data: bytes, codec: str) -> bool:
    for a, _ in iter_nal_types(data):
        if codec == "h264" and a & 0x1F == 5:
            return True
        if codec == "hevc" and 16 <= (a >> 1) & 0x3F <= 21:
            return True
    return False


@dataclass
class AccessUnit:
    pts: int | None
    dts: int | None
    data: bytes
    stream_type: int | None


@dataclass
class AuAssembler:
    """Groups video PES payloads into access units by PTS (first video stream only)."""

    stream_id: int | None = None
    _pts: int | None = None
    _dts: int | None = None
    _parts: list[bytes] = field(default_factory=list)

    def push(self, pes: Pes, stream_types: dict[int, int]) -> list[AccessUnit]:
        if self.stream_id is None:
            self.stream_id = pes.stream_id
        if pes.stream_id != self.stream_id:
            return []
        out = []
        if pes.pts is not None and self._parts and pes.pts != self._pts:
            out.append(self._take(stream_types))
        if pes.pts is not None and not self._parts:
            self._pts, self._dts = pes.pts, pes.dts
        self._parts.append(pes.payload)
        return out

    def flush(self, stream_types: dict[int, int]) -> list[AccessUnit]:
        return [self._take(stream_types)] if self._parts else []

    def _take(self, stream_types: dict[int, int]) -> AccessUnit:
        au = AccessUnit(self._pts, self._dts, b"".join(self._parts), stream_types.get(self.stream_id or 0))
        self._pts = self._dts = None
        self._parts = []
        return au
