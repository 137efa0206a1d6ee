"""The source interface every camera input implements, its typed errors, and the shared decoder.

A source delivers :class:`SourceItem`s: one encoded packet (kept for recordings, never re-encoded)
together with the frames decoding it produced. Every frame carries its presentation time in seconds
on the source's clock and its UTC wall-clock capture time. Failures raise a :class:`SourceError`
whose ``reason`` is what the camera status event reports.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import av
import av.error

log = logging.getLogger(__name__)

# Reasons a source stops; the camera status event carries them verbatim.
REASON_TIMEOUT = "timeout"
REASON_AUTH = "auth"
REASON_NOT_FOUND = "not_found"
REASON_UNREACHABLE = "unreachable"
REASON_CODEC = "codec"
REASON_EOF = "eof"
REASON_PROTOCOL = "protocol"
REASON_ERROR = "error"


class SourceError(RuntimeError):
    """A source failed; ``reason`` is one of the ``REASON_*`` values."""

    reason = REASON_ERROR

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SourceTimeout(SourceError):
    reason = REASON_TIMEOUT


class SourceAuthError(SourceError):
    reason = REASON_AUTH


class SourceNotFound(SourceError):
    reason = REASON_NOT_FOUND


class SourceUnreachable(SourceError):
    reason = REASON_UNREACHABLE


class SourceCodecError(SourceError):
    reason = REASON_CODEC


class SourceProtocolError(SourceError):
    reason = REASON_PROTOCOL


@dataclass(frozen=True)
class StreamInfo:
    """What a source carries: codec (FFmpeg name), size, nominal fps and the packet time base.

    ``template`` is the demuxer's stream (for remuxing with ``add_stream_from_template``) or None
    when the source builds packets itself (GB/T 28181); recorders then create a stream by codec name.
    The template is only valid while the source's container is open (closing it frees the stream):
    whatever outlives the source copies it first (see :func:`pipeline.recordings.own_template`).
    """

    codec: str
    width: int
    height: int
    fps: float | None
    time_base: Fraction
    template: Any = None


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    """A decoded picture, not yet converted: ``frame`` is an ``av.VideoFrame``."""

    frame: av.VideoFrame
    pts: float
    captured_at: datetime
    keyframe: bool


@dataclass(frozen=True, eq=False)
class SourceItem:
    """One encoded packet (None for frames drained at end of stream) and the frames it decoded to."""

    packet: av.Packet | None
    pts: float
    captured_at: datetime
    keyframe: bool
    frames: list[DecodedFrame]


@dataclass
class SourceStats:
    """Counters a source keeps; the camera runner turns them into stats events."""

    packets: int = 0
    bytes: int = 0
    frames_decoded: int = 0
    decode_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class WallClock:
    """Maps source pts (seconds) to UTC.

    Anchored at the first pts seen. For live sources the mapping is re-anchored on the arrival time
    whenever it drifts more than ``max_drift_s`` from it (clock jumps, pts resets); for files it is
    the simulated time ``start + (pts - first pts)``.
    """

    def __init__(self, *, live: bool, start: datetime | None = None, max_drift_s: float = 2.0) -> None:
        self.live = live
        self._start = start
        self._max_drift = timedelta(seconds=max_drift_s)
        self._anchor_pts: float | None = None
        self._anchor_utc: datetime | None = None
        self.reanchors = 0

    def anchor(self, pts: float, utc: datetime) -> None:
        """From now on ``pts`` is ``utc`` (a playback that was moved to another position)."""
        self._anchor_pts, self._anchor_utc = pts, utc

    def at(self, pts: float) -> datetime:
        now = datetime.now(UTC)
        if self._anchor_pts is None or self._anchor_utc is None:
            self._anchor_pts = pts
            self._anchor_utc = self._start or now
        utc = self._anchor_utc + timedelta(seconds=pts - self._anchor_pts)
        if self.live and abs(utc - now) > self._max_drift:
            self._anchor_pts, self._anchor_utc = pts, now
            self.reanchors += 1
            utc = now
        return utc


class Decoder:
    """Decodes packets with one codec context, counting (and surviving) corrupt packets.

    ``max_consecutive_errors`` corrupt packets in a row raise :class:`SourceCodecError`: the stream is
    not something this decoder understands.
    """

    def __init__(
        self, codec_context: av.VideoCodecContext, clock: WallClock, stats: SourceStats, *, max_consecutive_errors: int = 100
    ) -> None:
        self.ctx = codec_context
        self.clock = clock
        self.stats = stats
        self._errors_in_row = 0
        self._max_errors = max_consecutive_errors
        self._last_pts: float | None = None
        self._step = 0.04

    def decode(self, packet: av.Packet | None) -> list[DecodedFrame]:
        try:
            frames = self.ctx.decode(packet)
        except av.error.EOFError:
            return []
        except (av.error.FFmpegError, ValueError) as exc:
            self.stats.decode_errors += 1
            self._errors_in_row += 1
            log.debug("decode error: %s", exc)
            if self._errors_in_row >= self._max_errors:
                msg = f"{self._errors_in_row} undecodable packets in a row ({self.ctx.name}): {exc}"
                raise SourceCodecError(msg) from exc
            return []
        self._errors_in_row = 0
        out = []
        for frame in frames:
            pts = float(frame.time) if frame.time is not None else None
            if (pts is None or not math.isfinite(pts)) and packet is not None and packet.pts is not None and packet.time_base:
                pts = float(packet.pts * packet.time_base)
            if pts is None or not math.isfinite(pts):
                # Frames flushed at end of stream from a bare codec context carry no time base:
                # continue the sequence at the last observed frame interval.
                pts = self._last_pts + self._step if self._last_pts is not None else 0.0
            if self._last_pts is not None and pts > self._last_pts:
                self._step = pts - self._last_pts
            self._last_pts = pts
            out.append(DecodedFrame(frame, pts, self.clock.at(pts), bool(frame.key_frame)))
        self.stats.frames_decoded += len(out)
        return out

    def drain(self) -> list[DecodedFrame]:
        """Flush frames the decoder still holds (end of stream), then reset it for reuse."""
        frames = self.decode(None)
        try:
            self.ctx.flush_buffers()
        except av.error.FFmpegError:  # pragma: no cover - defensive
            log.debug("flush_buffers failed", exc_info=True)
        return frames


class Source(abc.ABC):
    """A camera input. Use as a context manager or call :meth:`open` and :meth:`close`."""

    kind = "source"

    def __init__(self, camera_id: str, *, stop_event: threading.Event | None = None) -> None:
        self.camera_id = camera_id
        self.stop_event = stop_event or threading.Event()
        self.stats = SourceStats()
        self.info: StreamInfo | None = None

    @abc.abstractmethod
    def open(self) -> StreamInfo:
        """Connect/open; raises :class:`SourceError`."""

    @abc.abstractmethod
    def items(self) -> Iterator[SourceItem]:
        """Packets with their decoded frames until end of stream; raises :class:`SourceError`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything; safe to call twice."""

    @property
    def live(self) -> bool:
        return True

    def frames(self) -> Iterator[DecodedFrame]:
        for item in self.items():
            yield from item.frames

    def describe(self) -> str:
        """A loggable description (never containing credentials)."""
        return f"{self.kind}:{self.camera_id}"

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_item(packet: av.Packet | None, pts: float, clock: WallClock, frames: list[DecodedFrame]) -> SourceItem:
    keyframe = bool(packet.is_keyframe) if packet is not None else False
    return SourceItem(packet, pts, clock.at(pts), keyframe, frames)
