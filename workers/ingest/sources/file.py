"""File source: anything FFmpeg reads, with optional looping and real-time pacing.

Used for simulations, demos (``tubeline up`` on a sample video) and benchmarks. When looping, the
file is reopened at its end and timestamps continue monotonically (pts offset by the length played so
far), so downstream stages and recordings see one continuous stream. Capture times are simulated:
session start + (pts - first pts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import av.error

from workers.ingest.sources.base import (
    Decoder,
    SourceCodecError,
    SourceItem,
    SourceNotFound,
    StreamInfo,
    WallClock,
    make_item,
)
from workers.ingest.sources.base import Source as _Source
from workers.ingest.sources.errors import classify_av_error

log = logging.getLogger(__name__)

_MAX_LAG_S = 1.0


class FileSource(_Source):
    kind = "file"

    def __init__(
        self,
        camera_id: str,
        path: str | Path,
        *,
        loop: bool = False,
        realtime: bool = True,
        speed: float = 1.0,
        decoder_threads: int = 1,
        start: datetime | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        super().__init__(camera_id, stop_event=stop_event)
        if speed <= 0:
            msg = "speed must be positive"
            raise ValueError(msg)
        self.path = Path(path)
        self.loop = loop
        self.realtime = realtime
        self.speed = speed
        self.decoder_threads = decoder_threads
        self._start = start
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self.loops = 0

    @property
    def live(self) -> bool:
        return False

    def describe(self) -> str:
        return f"file:{self.camera_id}:{self.path.name}"

    def open(self) -> StreamInfo:
        if not self.path.is_file():
            msg = f"video file {self.path} does not exist"
            raise SourceNotFound(msg)
        self._open_container()
        assert self._stream is not None
        ctx = self._stream.codec_context
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.info = StreamInfo(
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            fps=float(rate) if rate else None,
            time_base=self._stream.time_base or Fraction(1, 90000),
            template=self._stream,
        )
        log.info("opened %s: %s %dx%d", self.describe(), ctx.name, ctx.width, ctx.height)
        return self.info

    def _open_container(self) -> None:
        self.close()
        try:
            container = av.open(str(self.path), mode="r")
        except av.error.InvalidDataError as exc:
            msg = f"video file {self.path} is not readable (truncated or not a video): {exc}"
            raise SourceCodecError(msg) from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise classify_av_error(exc, f"opening {self.path}") from exc
        if not container.streams.video:
            container.close()
            msg = f"video file {self.path} has no video stream"
            raise SourceCodecError(msg)
        stream = container.streams.video[0]
        stream.codec_context.thread_count = self.decoder_threads
        if self.decoder_threads != 1:
            stream.thread_type = "AUTO"
        self._container, self._stream = container, stream

    def items(self) -> Iterator[SourceItem]:
        if self._container is None:
            self.open()
        clock = WallClock(live=False, start=self._start or datetime.now(UTC))
        pacer = _Pacer(self.speed, self.stop_event) if self.realtime else None
        offset = 0  # in stream time base
        while not self.stop_event.is_set():
            assert self._stream is not None
            decoder = Decoder(self._stream.codec_context, clock, self.stats)
            end = yield from self._play_once(decoder, offset, pacer)
            if self.stop_event.is_set():
                return
            tail = decoder.drain()
            if tail:
                yield SourceItem(None, tail[-1].pts, tail[-1].captured_at, False, tail)
            if not self.loop or end is None:
                return
            offset = end
            self.loops += 1
            log.debug("%s: looping (%d)", self.describe(), self.loops)
            self._open_container()

    def _play_once(self, decoder: Decoder, offset: int, pacer: _Pacer | None) -> Generator[SourceItem, None, int | None]:
        """Yield one pass over the file; returns the end pts (stream time base) for the next loop."""
        assert self._container is not None and self._stream is not None
        stream = self._stream
        tb = stream.time_base or Fraction(1, 90000)
        default_duration = _frame_duration(stream, tb)
        end: int | None = None
        demux = self._container.demux(stream)
        while not self.stop_event.is_set():
            try:
                packet = next(demux)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError) as exc:
                # A damaged tail ends the file; say so but keep what was read.
                log.warning("%s: stopped reading at a damaged part of the file: %s", self.describe(), exc)
                self.stats.extra["read_errors"] = self.stats.extra.get("read_errors", 0) + 1
                break
            if packet.size == 0:
                continue
            if packet.pts is None:
                packet.pts = packet.dts
            if packet.pts is None:
                continue
            if offset:
                packet.pts += offset
                if packet.dts is not None:
                    packet.dts += offset
            pts = float(packet.pts * tb)
            end = max(end or 0, packet.pts + (packet.duration or default_duration))
            if pacer is not None:
                pacer.wait_until(pts)
            self.stats.packets += 1
            self.stats.bytes += packet.size
            frames = decoder.decode(packet)
            yield make_item(packet, pts, decoder.clock, frames)
        return end

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None


def _frame_duration(stream: av.video.stream.VideoStream, tb: Fraction) -> int:
    rate = stream.average_rate or stream.guessed_rate or 25
    return max(1, round(1 / (float(rate) * tb)))


class _Pacer:
    """Sleeps so that pts advance at ``speed`` × real time; catches up instead of bursting after a stall."""

    def __init__(self, speed: float, stop_event: threading.Event) -> None:
        self.speed = speed
        self.stop_event = stop_event
        self._mono0: float | None = None
        self._pts0 = 0.0

    def wait_until(self, pts: float) -> None:
        now = time.monotonic()
        if self._mono0 is None:
            self._mono0, self._pts0 = now, pts
            return
        due = self._mono0 + (pts - self._pts0) / self.speed
        delay = due - now
        if delay > 0:
            self.stop_event.wait(delay)
        elif delay < -_MAX_LAG_S:
            self._mono0, self._pts0 = now, pts
