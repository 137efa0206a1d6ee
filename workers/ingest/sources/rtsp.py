"""RTSP source: FFmpeg's RTSP client over TCP (interleaved) or UDP, with credentials and timeouts.

Credentials are kept as ``SecretStr`` and put into the URL only for the call that opens the stream;
every log line and error message uses :func:`redact_url`. Open and read timeouts use PyAV's interrupt
timeout, so a dead camera or a stalled stream raises :class:`SourceTimeout` instead of hanging.
Reconnecting is the camera runner's job (capped exponential backoff with jitter).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import quote

import av
import av.error
from pydantic import SecretStr

from pipeline.cameras.urls import redact_url, split_credentials, with_credentials
from workers.ingest.sources.base import (
    Decoder,
    Source,
    SourceCodecError,
    SourceError,
    SourceItem,
    SourceTimeout,
    StreamInfo,
    WallClock,
    classify_av_error,
    make_item,
)

log = logging.getLogger(__name__)


class RtspSource(Source):
    kind = "rtsp"

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        username: str | None = None,
        password: SecretStr | None = None,
        transport: str = "tcp",
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        decoder_threads: int = 1,
        stop_event: threading.Event | None = None,
    ) -> None:
        super().__init__(camera_id, stop_event=stop_event)
        if transport not in ("tcp", "udp"):
            msg = f"RTSP transport must be tcp or udp, not {transport!r}"
            raise ValueError(msg)
        clean, url_user, url_password = split_credentials(url)
        self.url = clean
        self.username = username or url_user
        self.password = password or (SecretStr(url_password) if url_password else None)
        self.transport = transport
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.decoder_threads = decoder_threads
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    def describe(self) -> str:
        return f"rtsp:{self.camera_id}:{redact_url(self.url)}({self.transport})"

    def open(self) -> StreamInfo:
        self.close()
        what = f"RTSP {redact_url(self.url)} over {self.transport}"
        options = {"rtsp_transport": self.transport}
        started = time.monotonic()
        try:
            container = av.open(
                with_credentials(self.url, self.username, self.password),
                mode="r",
                options=options,
                timeout=(self.open_timeout_s, self.read_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as exc:
            error = _timed_out(classify_av_error(exc, what), time.monotonic() - started, self.open_timeout_s)
            raise _scrub(error, self) from None
        if not container.streams.video:
            container.close()
            msg = f"{what}: no video track"
            raise SourceCodecError(msg)
        stream = container.streams.video[0]
        stream.codec_context.thread_count = self.decoder_threads
        self._container, self._stream = container, stream
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        self.info = StreamInfo(
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            fps=float(rate) if rate else None,
            time_base=stream.time_base or Fraction(1, 90000),
            template=stream,
        )
        log.info("opened %s: %s %dx%d", self.describe(), ctx.name, ctx.width, ctx.height)
        return self.info

    def items(self) -> Iterator[SourceItem]:
        if self._container is None:
            self.open()
        assert self._container is not None and self._stream is not None
        stream = self._stream
        tb = stream.time_base or Fraction(1, 90000)
        decoder = Decoder(stream.codec_context, WallClock(live=True), self.stats)
        demux = self._container.demux(stream)
        while not self.stop_event.is_set():
            asked = time.monotonic()
            try:
                packet = next(demux)
            except StopIteration:
                msg = f"{self.describe()}: stream ended"
                raise SourceError(msg, reason="eof") from None
            except (av.error.FFmpegError, OSError) as exc:
                error = classify_av_error(exc, f"reading {self.describe()}")
                raise _scrub(_timed_out(error, time.monotonic() - asked, self.read_timeout_s), self) from None
            if packet.size == 0:
                continue
            if packet.pts is None:
                packet.pts = packet.dts
            if packet.pts is None:
                continue
            pts = float(packet.pts * tb)
            self.stats.packets += 1
            self.stats.bytes += packet.size
            frames = decoder.decode(packet)
            yield make_item(packet, pts, decoder.clock, frames)

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):  # pragma: no cover - closing a broken connection
                log.debug("close failed", exc_info=True)
            finally:
                self._container = None
                self._stream = None


def _timed_out(error: SourceError, elapsed: float, limit: float) -> SourceError:
    """FFmpeg reports an interrupted (timed-out) call as invalid data or EOF; call it what it was."""
    if error.reason in ("protocol", "error", "eof") and elapsed >= limit * 0.9:
        return SourceTimeout(f"{error} (timed out after {elapsed:.1f} s)")
    return error


def _scrub(error: SourceError, source: RtspSource) -> SourceError:
    """Make sure no password leaks through an FFmpeg message that echoes the URL."""
    text = str(error)
    if source.password is not None:
        secret = source.password.get_secret_value()
        if secret and (secret in text or quote(secret, safe="") in text):
            text = text.replace(quote(secret, safe=""), "***").replace(secret, "***")
            return type(error)(text, error.reason)
    return error
