"""GB/T 28181 channel as a :class:`~workers.ingest.sources.base.Source`: INVITE, RTP/PS → access units → decode.

``open`` INVITEs the channel and waits for the first decodable keyframe (so size and codec are known);
``items`` yields packets (90 kHz timestamps from the PES PTS, unwrapped past 33 bits) with their frames.
The session ends with an error the camera runner understands: the device's BYE (``eof``; the runner
re-INVITEs live channels), no RTP for ``media_timeout_s`` (``timeout``), or RTP arriving that never
yields a decodable picture (``protocol``: garbage, wrong SSRC, not PS). ``close`` sends BYE.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Protocol

import av

from pipeline.config.ingest import Gb28181Config
from workers.ingest.gb28181.ps import AccessUnit, is_keyframe
from workers.ingest.gb28181.session import MediaSession, SessionManager
from workers.ingest.sources.base import (
    DecodedFrame,
    Decoder,
    Source,
    SourceCodecError,
    SourceError,
    SourceItem,
    SourceProtocolError,
    SourceTimeout,
    StreamInfo,
    WallClock,
    make_item,
)

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
_WRAP = 1 << 33
_DECODABLE = ("h264", "hevc", "mpeg4")


class MediaPlatform(Protocol):
    """What a channel source needs of the platform: its media settings and its INVITE dialogs."""

    @property
    def config(self) -> Gb28181Config: ...

    @property
    def sessions(self) -> SessionManager: ...


class GbSource(Source):
    kind = "gb28181"

    def __init__(
        self,
        platform: MediaPlatform,
        channel_id: str,
        device_id: str,
        *,
        mode: str | None = None,
        playback: tuple[datetime, datetime] | None = None,
        download_speed: int | None = None,
        decode: bool = True,
        decoder_threads: int = 1,
        stop_event: threading.Event | None = None,
    ) -> None:
        super().__init__(channel_id, stop_event=stop_event)
        self.platform = platform
        self.channel_id = channel_id
        self.device_id = device_id
        self.mode = mode
        self.playback = playback
        self.download_speed = download_speed
        self.decode = decode
        self._anchor_at: datetime | None = None
        self.decoder_threads = decoder_threads
        self.session: MediaSession | None = None
        self._decoder: Decoder | None = None
        self._pending: list[SourceItem] = []
        self._last_pts: int | None = None
        self._wrap = 0

    @property
    def live(self) -> bool:
        return self.playback is None

    def describe(self) -> str:
        what = "download" if self.download_speed else "playback" if self.playback else "live"
        return f"gb28181:{self.device_id}/{self.channel_id}({what},{self.mode or self.platform.config.media_transport})"

    # -- open -----------------------------------------------------------------------------------------
    def open(self) -> StreamInfo:
        self.close()
        self.session = self.platform.sessions.invite(self.device_id, self.channel_id, mode=self.mode,
                                                     playback=self.playback, download_speed=self.download_speed)
        deadline = time.monotonic() + self.platform.config.media_timeout_s
        while not self._pending:
            if self.stop_event.is_set():
                msg = f"{self.describe()}: stopped while waiting for the first picture"
                raise SourceError(msg, reason="stopped")
            au = self._next_au(deadline)
            item = self._decode(au)
            if item.frames:
                self._pending.append(item)
        frame = self._pending[0].frames[0].frame
        assert self._decoder is not None
        self.info = StreamInfo(self._decoder.ctx.name, frame.width, frame.height, None, TIME_BASE, None)
        log.info("opened %s: %s %dx%d", self.describe(), self.info.codec, frame.width, frame.height)
        return self.info

    # -- playback control (MANSRTSP over INFO) ---------------------------------------------------------
    def _control(self, verb: str, **kw: float | None) -> None:
        if self.session is None or self.playback is None:
            msg = f"{self.describe()}: playback control needs an open playback session"
            raise SourceError(msg, reason="protocol")
        status = self.session.control(verb, **kw)
        if status >= 300:
            msg = f"{self.describe()}: the device answered {status} to {verb}"
            raise SourceError(msg, reason="protocol")

    def pause(self) -> None:
        self._control("PAUSE")

    def resume(self, scale: float | None = None) -> None:
        self._control("PLAY", scale=scale)

    def seek(self, seconds: float) -> None:
        """Continue the playback ``seconds`` after the start of the requested range; capture times follow."""
        self._control("PLAY", npt=seconds)
        assert self.playback is not None
        self._anchor_at = self.playback[0] + timedelta(seconds=seconds)

    # -- read -----------------------------------------------------------------------------------------
    def items(self) -> Iterator[SourceItem]:
        if self.session is None:
            self.open()
        while self._pending:
            yield self._pending.pop(0)
        while not self.stop_event.is_set():
            deadline = time.monotonic() + self.platform.config.media_timeout_s
            try:
                au = self._next_au(deadline)
            except SourceError as exc:
                if exc.reason == "eof" and not self.live:
                    return  # playback finished: the device said BYE
                raise
            yield self._decode(au)

    def _next_au(self, deadline: float) -> AccessUnit:
        assert self.session is not None
        session = self.session
        while True:
            au = session.read(0.2)
            if au is not None:
                return au
            self._update_stats()
            receiver = session.receiver
            if session.ended.is_set() or (receiver.closed and not self.stop_event.is_set()):
                reason = session.end_reason or "media connection closed by the device"
                msg = f"{self.describe()}: {reason}"
                raise SourceError(msg, reason=session.end_kind if session.ended.is_set() else "eof")
            if self.stop_event.is_set():
                msg = f"{self.describe()}: stopped"
                raise SourceError(msg, reason="stopped")
            now = time.monotonic()
            idle = now - receiver.last_data
            if now >= deadline:
                raise self._no_picture(now - (deadline - self.platform.config.media_timeout_s), idle)

    def _no_picture(self, waited: float, idle: float) -> SourceError:
        assert self.session is not None
        st = self.session.receiver.stats
        detail = (f"{self.describe()}: no decodable picture for {waited:.0f} s; RTP packets {st.packets}, "
                  f"wrong SSRC {st.wrong_ssrc}, not RTP {st.garbage}, PS errors {self.session.receiver.ps_errors}, "
                  f"damaged frames {st.damaged_frames}, decode errors {self.stats.decode_errors}")
        if idle >= waited - 0.5:  # nothing at all arrived in this window: the media stopped (or never started)
            before = f" (after {st.packets} RTP packets)" if st.packets else ""
            return SourceTimeout(f"{self.describe()}: no RTP for {idle:.0f} s{before}")
        if self.session.receiver.codec not in (None, *_DECODABLE):
            return SourceCodecError(f"{detail}; unsupported codec {self.session.receiver.codec}")
        return SourceProtocolError(detail)

    def _decode(self, au: AccessUnit) -> SourceItem:
        assert self.session is not None
        codec = self.session.receiver.codec
        if self._decoder is None:
            if codec not in _DECODABLE:
                msg = f"{self.describe()}: cannot decode {codec or 'an unknown codec'}"
                raise SourceCodecError(msg)
            ctx = av.CodecContext.create(codec, "r")
            if not isinstance(ctx, av.VideoCodecContext):
                msg = f"{self.describe()}: {codec} is not a video codec"
                raise SourceCodecError(msg)
            ctx.thread_count = self.decoder_threads
            # Live: arrival time. Recordings (playback, download): the requested start + media time.
            clock = WallClock(live=True) if self.playback is None else WallClock(live=False, start=self.playback[0])
            self._decoder = Decoder(ctx, clock, self.stats, max_consecutive_errors=50)
        pts = self._unwrap(au.pts)
        packet = av.Packet(au.data)
        packet.time_base = TIME_BASE
        packet.pts = pts
        packet.dts = pts if au.dts is None else pts - ((au.pts or 0) - au.dts) % _WRAP
        packet.is_keyframe = is_keyframe(au.data, codec or "")
        self.stats.packets += 1
        self.stats.bytes += len(au.data)
        if self._anchor_at is not None and packet.is_keyframe:
            self._decoder.clock.anchor(float(pts * TIME_BASE), self._anchor_at)  # the first picture after a seek
            self._anchor_at = None
        decode = self.decode or not self._pending and self.info is None
        frames: list[DecodedFrame] = self._decoder.decode(packet) if decode else []
        self._update_stats()
        return make_item(packet, float(pts * TIME_BASE), self._decoder.clock, frames)

    def _unwrap(self, pts: int | None) -> int:
        if pts is None:
            return (self._last_pts or 0) + 3600
        if self._last_pts is not None and pts + self._wrap < self._last_pts - _WRAP // 2:
            self._wrap += _WRAP
        value = pts + self._wrap
        self._last_pts = value
        return value

    def _update_stats(self) -> None:
        if self.session is None:
            return
        st = self.session.receiver.stats
        rs = self.session.receiver.reorder.stats
        self.stats.extra.update(rtp_received=st.packets, rtp_lost=rs.lost, rtp_reordered=rs.reordered,
                                rtp_wrong_ssrc=st.wrong_ssrc, rtp_garbage=st.garbage, ps_errors=self.session.receiver.ps_errors)

    def close(self) -> None:
        if self.session is not None:
            self._update_stats()
            session, self.session = self.session, None
            session.close()
        self._decoder = None
        self._pending = []
