"""RTSP source: FFmpeg's RTSP client over TCP (interleaved) or UDP, with transport fallback, credentials and
timeouts.

Transport: the configured one is tried first; when the server refuses it (``461 Unsupported Transport``, or
``400 Bad Request`` as some relays answer a SETUP they cannot serve) or UDP brings no data in time (a
firewall), the other one is tried at once. The transport that worked is remembered per camera
(:class:`TransportMemory`), so reconnects go straight to it. Opening reads at most ``probe_s`` of stream to
learn its parameters (FFmpeg's default is 5 s), and decoding starts at the first keyframe: frames before it
cannot be decoded cleanly, and skipping them makes the first picture after a (re)connect arrive sooner.

Credentials are kept as ``SecretStr`` and put into the URL only for the call that opens the stream; every
log line and error message uses :func:`redact_url` (errors carry FFmpeg's text, never the URL). Open and
read timeouts use PyAV's interrupt timeout, so a dead camera or a stalled stream raises
:class:`SourceTimeout` instead of hanging. Reconnecting is the camera runner's job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    make_item,
)
from workers.ingest.sources.errors import TransportRefused, classify_av_error

log = logging.getLogger(__name__)

TRANSPORTS = ("tcp", "udp")
KEYFRAME_WAIT_PACKETS = 600
"""Packets read without a keyframe before decoding starts anyway (streams that never flag one)."""


@dataclass
class TransportMemory:
    """The transport that last worked for one camera (kept by the source factory across reconnects)."""

    working: str | None = None
    fallbacks: int = 0


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
        fallback: bool = True,
        memory: TransportMemory | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        probe_s: float = 1.0,
        decoder_threads: int = 1,
        stop_event: threading.Event | None = None,
    ) -> None:
        super().__init__(camera_id, stop_event=stop_event)
        if transport not in TRANSPORTS:
            msg = f"RTSP transport must be tcp or udp, not {transport!r}"
            raise ValueError(msg)
        clean, url_user, url_password = split_credentials(url)
        self.url = clean
        self.username = username or url_user
        self.password = password or (SecretStr(url_password) if url_password else None)
        self.transport = transport
        self.fallback = fallback
        self.memory = memory or TransportMemory()
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.probe_s = probe_s
        self.decoder_threads = decoder_threads
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    def describe(self) -> str:
        return f"rtsp:{self.camera_id}:{redact_url(self.url)}({self.transport})"

    def _order(self) -> list[str]:
        first = self.memory.working or self.transport
        if not self.fallback:
            return [self.transport]
        return [first, *[t for t in TRANSPORTS if t != first]]

    def open(self) -> StreamInfo:
        self.close()
        errors: list[SourceError] = []
        for transport in self._order():
            try:
                container = self._connect(transport)
            except SourceError as exc:
                errors.append(exc)
                if self.fallback and _try_other_transport(exc, transport) and not self.stop_event.is_set():
                    log.info("%s: %s; trying the other transport", self.describe(), exc)
                    continue
                break
            if errors:
                self.memory.fallbacks += 1
                log.warning("%s: using RTSP over %s instead (%s)", self.describe(), transport.upper(), errors[-1])
            elif transport != self.transport:
                log.info("%s: using RTSP over %s, which worked before", self.describe(), transport.upper())
            self.memory.working = transport
            self.transport = transport
            return self._take(container)
        raise _scrub(_combine(errors), self)  # the remembered transport stays: a server that is down changes nothing

    def _connect(self, transport: str) -> av.container.InputContainer:
        what = f"RTSP {redact_url(self.url)} over {transport.upper()}"
        options = {"rtsp_transport": transport, "analyzeduration": str(int(self.probe_s * 1e6)),
                   "probesize": str(512 * 1024)}
        started = time.monotonic()
        try:
            return av.open(with_credentials(self.url, self.username, self.password), mode="r", options=options,
                           timeout=(self.open_timeout_s, self.read_timeout_s))
        except (av.error.FFmpegError, OSError) as exc:
            raise _timed_out(classify_av_error(exc, what), time.monotonic() - started, self.open_timeout_s) from None

    def _take(self, container: av.container.InputContainer) -> StreamInfo:
        what = f"RTSP {redact_url(self.url)}"
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
        waiting = 0  # packets skipped before the first keyframe
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
            if waiting >= 0 and not packet.is_keyframe and waiting < KEYFRAME_WAIT_PACKETS:
                waiting += 1
                self.stats.extra["skipped_before_keyframe"] = waiting
                continue
            waiting = -1
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


def _try_other_transport(error: SourceError, transport: str) -> bool:
    """The server refused this transport, or UDP brought nothing in time (blocked): worth trying the other."""
    return isinstance(error, TransportRefused) or (transport == "udp" and error.reason == "timeout")


def _combine(errors: list[SourceError]) -> SourceError:
    """The error to report after every transport failed: the last one, naming the earlier ones."""
    last = errors[-1]
    if len(errors) == 1:
        return last
    earlier = "; ".join(str(e) for e in errors[:-1])
    return type(last)(f"{last} (before that: {earlier})", last.reason)


def _timed_out(error: SourceError, elapsed: float, limit: float) -> SourceError:
    """FFmpeg reports an interrupted (timed-out) call as invalid data or EOF; call it what it was."""
    if error.reason in ("protocol", "error", "eof", "unreachable") and elapsed >= limit * 0.9:
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
