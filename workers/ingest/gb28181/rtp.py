"""RTP for GB/T 28181 media: packet parsing, RFC 4571 framing over TCP, reordering with loss counting,
and grouping of packets into frames (one RTP timestamp = one PS pack = one video frame).

Loss handling follows ZLMediaKit: a frame that lost a packet is dropped whole, and the receiver waits
for the next keyframe before decoding again.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

RTP_VERSION = 2
MAX_RTP = 65535 + 4


class RtpError(ValueError):
    """Not an RTP packet."""


@dataclass(frozen=True)
class RtpPacket:
    seq: int
    timestamp: int
    ssrc: int
    payload_type: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    if len(data) < 12:
        msg = f"RTP packet of {len(data)} bytes is shorter than its header"
        raise RtpError(msg)
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    if b0 >> 6 != RTP_VERSION:
        msg = f"RTP version {b0 >> 6}"
        raise RtpError(msg)
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < offset + 4:
            msg = "truncated RTP header extension"
            raise RtpError(msg)
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if b0 & 0x20:  # padding
        pad = data[-1]
        if pad == 0 or pad > end - offset:
            msg = "bad RTP padding"
            raise RtpError(msg)
        end -= pad
    if offset > end:
        msg = "RTP header longer than the packet"
        raise RtpError(msg)
    return RtpPacket(seq, ts, ssrc, b1 & 0x7F, bool(b1 & 0x80), bytes(data[offset:end]))


def build_rtp(*, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool, payload_type: int = 96) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + payload


class Rfc4571Framer:
    """Splits a TCP stream into RTP packets: 2-byte big-endian length prefix (RFC 4571), also accepting
    the 4-byte RTSP interleaved ``$`` prefix. Garbage is skipped byte by byte until a plausible header."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        buf = self._buf
        while len(buf) >= 2:
            if buf[0] == 0x24 and len(buf) < 5:
                break  # maybe an interleaved header: wait for enough bytes to tell
            if buf[0] == 0x24 and buf[4] >> 6 == RTP_VERSION:
                n, head = struct.unpack_from("!H", buf, 2)[0], 4
            else:
                n, head = struct.unpack_from("!H", buf, 0)[0], 2
            if n < 12 or (len(buf) >= head + 1 and buf[head] >> 6 != RTP_VERSION):
                del buf[:1]
                self.garbage_bytes += 1
                continue
            if len(buf) < head + n:
                break
            out.append(bytes(buf[head:head + n]))
            del buf[:head + n]
        return out


@dataclass
class ReorderStats:
    received: int = 0
    lost: int = 0
    reordered: int = 0
    duplicates: int = 0
    late: int = 0
    resyncs: int = 0


class Reorderer:
    """Puts packets back in sequence order, holding at most ``window`` packets or ``max_delay_s``.

    A hole still open when the window is full (or too old) is counted as lost and skipped. ``push``
    returns ``(packet, gap_before)`` pairs in order; ``gap_before`` tells the frame assembler that
    something is missing just before that packet.

    A sender that restarts its sequence numbers (a device restarting its stream inside the session) would
    otherwise look "late" for up to 32768 packets: after ``RESYNC_AFTER`` late packets in a row the
    reorderer starts again at the new numbers (counted in ``resyncs``; the first packet carries a gap).
    """

    RESYNC_AFTER = 16

    def __init__(self, window: int = 32, max_delay_s: float = 0.3) -> None:
        self.window = window
        self.max_delay_s = max_delay_s
        self.stats = ReorderStats()
        self._expected: int | None = None
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._late_run = 0

    def push(self, packet: RtpPacket, now: float | None = None) -> list[tuple[RtpPacket, bool]]:
        now = time.monotonic() if now is None else now
        self.stats.received += 1
        if self._expected is None:
            self._expected = packet.seq
        ahead = (packet.seq - self._expected) & 0xFFFF
        if ahead >= 0x8000:
            self._late_run += 1
            if self._late_run < self.RESYNC_AFTER:
                self.stats.late += 1  # older than what was already released (or a duplicate of it)
                return []
            return self._resync(packet, now)
        self._late_run = 0
        if packet.seq in self._held:
            self.stats.duplicates += 1
            return []
        if ahead > 0:
            self._held[packet.seq] = (packet, now)
            return self._release(now)
        if self._held:
            self.stats.reordered += 1
        out = [(packet, False)]
        self._expected = (packet.seq + 1) & 0xFFFF
        return out + self._release(now)

    def _resync(self, packet: RtpPacket, now: float) -> list[tuple[RtpPacket, bool]]:
        """Flush what is held, then continue from ``packet`` (the sender's numbers jumped back)."""
        expected = self._expected
        assert expected is not None  # set by the first packet, before anything can be held
        out = [(p, True) for _, (p, _) in sorted(self._held.items(), key=lambda kv: (kv[0] - expected) & 0xFFFF)]
        self._held.clear()
        self._late_run = 0
        self.stats.resyncs += 1
        self._expected = (packet.seq + 1) & 0xFFFF
        return [*out, (packet, True)] + self._release(now)

    def _release(self, now: float) -> list[tuple[RtpPacket, bool]]:
        out: list[tuple[RtpPacket, bool]] = []
        assert self._expected is not None
        while True:
            entry = self._held.pop(self._expected, None)
            if entry is not None:
                out.append((entry[0], False))
                self._expected = (self._expected + 1) & 0xFFFF
                continue
            if not self._held:
                return out
            oldest = min(t for _, t in self._held.values())
            if len(self._held) < self.window and now - oldest < self.max_delay_s:
                return out
            nearest = min(self._held, key=lambda s: (s - self._expected) & 0xFFFF)  # type: ignore[operator]
            self.stats.lost += (nearest - self._expected) & 0xFFFF
            packet, _ = self._held.pop(nearest)
            out.append((packet, True))
            self._expected = (nearest + 1) & 0xFFFF

    def flush(self, now: float | None = None) -> list[tuple[RtpPacket, bool]]:
        """Release what waited longer than ``max_delay_s`` (call when no packet arrives for a while)."""
        return self._release(time.monotonic() if now is None else now) if self._held else []


@dataclass
class RtpFrame:
    timestamp: int
    payload: bytes
    damaged: bool


@dataclass
class FrameAssembler:
    """Concatenates payloads of one RTP timestamp; a frame ends on the marker bit or a new timestamp."""

    _ts: int | None = None
    _parts: list[bytes] = field(default_factory=list)
    _damaged: bool = False

    def push(self, packet: RtpPacket, gap_before: bool) -> list[RtpFrame]:
        out = []
        if gap_before and self._ts is not None:
            self._damaged = True  # the pending frame may have lost its tail (and its marker)
        if self._ts is not None and packet.timestamp != self._ts:
            out.append(self._take())
        if gap_before:
            self._damaged = True
        self._ts = packet.timestamp
        self._parts.append(packet.payload)
        if packet.marker:
            out.append(self._take())
        return [f for f in out if f.payload]

    def _take(self) -> RtpFrame:
        frame = RtpFrame(self._ts or 0, b"".join(self._parts), self._damaged)
        self._ts, self._parts, self._damaged = None, [], False
        return frame
