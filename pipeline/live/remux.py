"""Turning live packets into what a browser shows: fragmented MP4 (remuxed, never re-encoded) or JPEG pictures.

:class:`Fmp4Muxer` writes one camera session's packets as fragmented MP4 (``empty_moov``, one fragment per
frame, ``default_base_moof``) for Media Source Extensions: the init segment (``ftyp`` + ``moov``) once, then a
``moof`` + ``mdat`` fragment per packet. H.264 and H.265 go through unchanged; parameter sets missing from the
stream's extradata (GB/T 28181 sources, RTSP without ``sprop-parameter-sets``) are taken from the first
keyframe. :func:`mse_codec` names the codec as MSE's ``isTypeSupported`` wants it.

:class:`JpegTranscoder` is the fallback for codecs a browser cannot play from MSE (MS-MPEG4, MPEG-4 part 2,
MJPEG, and H.265 where the browser has no decoder): it decodes the packets and encodes JPEG pictures at
most ``max_fps`` per second — a transcode, and the API labels it as one.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av
import av.error
import cv2

from pipeline.live.hub import LivePacket, StreamParams

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

log = logging.getLogger(__name__)

MSE_CODECS = frozenset({"h264", "hevc"})
TIME_BASE = Fraction(1, 90000)
_START4, _START3 = b"\x00\x00\x00\x01", b"\x00\x00\x01"
_PARAM_NALS = {"h264": {7, 8}, "hevc": {32, 33, 34}}


def annexb_nals(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream (without start codes); [] when ``data`` is not Annex-B."""
    if not (data.startswith(_START3) or data.startswith(_START4)):
        return []
    out: list[bytes] = []
    i = data.find(_START3)
    while i >= 0:
        start = i + 3
        j = data.find(_START3, start)
        end = len(data) if j < 0 else (j - 1 if data[j - 1] == 0 else j)
        if end > start:
            out.append(data[start:end])
        i = j
    return out


def nal_type(codec: str, nal: bytes) -> int:
    if not nal:
        return -1
    return (nal[0] >> 1) & 0x3F if codec == "hevc" else nal[0] & 0x1F


def parameter_sets(codec: str, keyframe: bytes) -> bytes:
    """Annex-B extradata (VPS/SPS/PPS) found in a keyframe, or b'' when there is none."""
    wanted = _PARAM_NALS.get(codec, set())
    found = [n for n in annexb_nals(keyframe) if nal_type(codec, n) in wanted]
    return b"".join(_START4 + n for n in found)


def config_to_annexb(codec: str, extradata: bytes) -> tuple[bytes, int]:
    """(Annex-B parameter sets, NAL length size) of an ``avcC``/``hvcC`` record; (extradata, 0) when it is
    already Annex-B (or empty). MP4 and Matroska sources carry such records and length-prefixed packets."""
    if not extradata or extradata[0] != 1:
        return extradata, 0
    out, data = bytearray(), extradata
    try:
        if codec == "h264":
            size = (data[4] & 3) + 1
            i, count = 6, data[5] & 0x1F
            for group in range(2):
                for _ in range(count):
                    n = int.from_bytes(data[i:i + 2], "big")
                    out += _START4 + data[i + 2:i + 2 + n]
                    i += 2 + n
                if group == 0:
                    count, i = data[i], i + 1
        else:
            size = (data[21] & 3) + 1
            i = 23
            for _ in range(data[22]):
                count, i = int.from_bytes(data[i + 1:i + 3], "big"), i + 3
                for _ in range(count):
                    n = int.from_bytes(data[i:i + 2], "big")
                    out += _START4 + data[i + 2:i + 2 + n]
                    i += 2 + n
    except IndexError:
        msg = f"malformed {codec} decoder configuration record"
        raise ValueError(msg) from None
    return bytes(out), size


def length_to_annexb(data: bytes, size: int) -> bytes:
    """A packet of length-prefixed NAL units as Annex-B (start codes)."""
    out, i = bytearray(), 0
    while i + size <= len(data):
        n = int.from_bytes(data[i:i + size], "big")
        out += _START4 + data[i + size:i + size + n]
        i += size + n
    return bytes(out)


def boxes(data: bytes) -> tuple[list[tuple[str, bytes]], int]:
    """Complete top-level MP4 boxes at the start of ``data`` and how many bytes they take."""
    out: list[tuple[str, bytes]] = []
    i = 0
    while len(data) - i >= 8:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size == 1 and len(data) - i >= 16:
            size = struct.unpack(">Q", data[i + 8:i + 16])[0]
        if size < 8 or len(data) - i < size:
            break
        out.append((kind.decode("latin-1"), data[i:i + size]))
        i += size
    return out, i


def mse_codec(init: bytes) -> str | None:
    """The RFC 6381 codec string of an init segment's video (``avc1.64001F``, ``hvc1.1.6.L93.B0``)."""
    i = init.find(b"avcC")
    if i >= 0 and len(init) >= i + 8:
        profile, compat, level = init[i + 5], init[i + 6], init[i + 7]
        return f"avc1.{profile:02X}{compat:02X}{level:02X}"
    i = init.find(b"hvcC")
    if i >= 0 and len(init) >= i + 17:
        b = init[i + 4:i + 17]
        space, tier, profile = (b[1] >> 6) & 3, (b[1] >> 5) & 1, b[1] & 0x1F
        compat = int.from_bytes(b[2:6], "big")
        reversed_compat = int(f"{compat:032b}"[::-1], 2)
        constraints = b[6:12].rstrip(b"\x00")
        text = f"hvc1.{'' if space == 0 else chr(ord('A') + space - 1)}{profile}.{reversed_compat:X}"
        text += f".{'H' if tier else 'L'}{b[12]}"
        for c in constraints:
            text += f".{c:X}"
        return text if constraints else text + ".B0"
    return None


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Buffer, /) -> int:  # a bytes-like object from FFmpeg
        data = memoryview(b)
        self.buf += data
        return data.nbytes


@dataclass(frozen=True)
class Fragment:
    """An fMP4 piece: ``init`` (ftyp+moov) or a media fragment (moof+mdat) of one packet."""

    kind: str  # "init" or "media"
    data: bytes
    captured_at: datetime | None = None
    media_s: float = 0.0


class Fmp4Muxer:
    """Fragmented MP4 of one stream session, fed packet by packet. Raises ValueError for codecs MSE cannot play."""

    def __init__(self, params: StreamParams) -> None:
        if params.codec not in MSE_CODECS:
            msg = f"{params.codec} cannot be played through Media Source Extensions"
            raise ValueError(msg)
        self.params = params
        self._sink = _Sink()
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._t0: float | None = None
        self._last_dts = -1
        self._pending: list[tuple[datetime, float]] = []
        self._nal_size = 0
        self._keep = b""
        self._template: av.container.InputContainer | None = None
        self.init: bytes | None = None
        self.codec_string: str | None = None

    def _open(self, first: LivePacket) -> None:
        # Everything is muxed from Annex-B: FFmpeg's MP4 muxer converts it (and writes avcC/hvcC itself).
        extradata, self._nal_size = config_to_annexb(self.params.codec, self.params.extradata)
        extradata = extradata or parameter_sets(self.params.codec, first.data)
        if not extradata:
            msg = f"camera {self.params.camera_id}: no parameter sets for {self.params.codec} (extradata or keyframe)"
            raise ValueError(msg)
        self._container = av.open(self._sink, mode="w", format="mp4", options={
            "movflags": "empty_moov+default_base_moof+frag_keyframe+frag_every_frame"})
        # The stream's parameters come from demuxing the parameter sets and the first picture as a raw
        # elementary stream: a stream made by codec name would open an encoder, which writes its own SPS.
        keyframe = length_to_annexb(first.data, self._nal_size) if self._nal_size else first.data
        self._template = av.open(io.BytesIO(extradata + keyframe), mode="r", format=self.params.codec)
        stream = self._container.add_stream_from_template(self._template.streams.video[0])
        stream.time_base = TIME_BASE
        if self.params.codec == "hevc":
            stream.codec_tag = "hvc1"  # what browsers accept (hev1 is refused by some)
        self._stream = stream
        self._t0 = first.dts

    def push(self, packet: LivePacket) -> list[Fragment]:
        """Mux one packet; returns the init segment and fragments completed by it (the previous packet's)."""
        if self._container is None:
            if not packet.keyframe:
                return []
            self._open(packet)
        assert self._container is not None and self._t0 is not None
        data = length_to_annexb(packet.data, self._nal_size) if self._nal_size else packet.data
        self._keep = data  # the packet may point into these bytes until the muxer has written them
        pkt = av.Packet(data)
        dts = max(round((packet.dts - self._t0) * 90000), self._last_dts + 1)
        pkt.dts = dts
        pkt.pts = max(round((packet.pts - self._t0) * 90000), dts)
        pkt.time_base = TIME_BASE
        pkt.is_keyframe = packet.keyframe
        pkt.stream = self._stream
        try:
            self._container.mux(pkt)
        except (av.error.FFmpegError, ValueError) as exc:
            log.debug("live mux error: %s", exc)
            return []
        self._last_dts = dts
        self._pending.append((packet.captured_at, dts / 90000))
        return self._collect()

    def _collect(self) -> list[Fragment]:
        found, used = boxes(bytes(self._sink.buf))
        out: list[Fragment] = []
        taken = 0
        pending_init: list[bytes] = []
        offset = 0
        i = 0
        while i < len(found):
            kind, data = found[i]
            if kind in ("ftyp", "moov"):
                pending_init.append(data)
                offset += len(data)
                if kind == "moov":
                    self.init = b"".join(pending_init)
                    self.codec_string = mse_codec(self.init)
                    out.append(Fragment("init", self.init))
                    pending_init, taken = [], offset
                i += 1
                continue
            if kind == "moof":
                if i + 1 >= len(found):
                    break
                media = data + found[i + 1][1]
                captured, media_s = self._pending.pop(0) if self._pending else (None, 0.0)
                out.append(Fragment("media", media, captured, media_s))
                offset += len(media)
                taken = offset
                i += 2
                continue
            offset += len(data)  # styp/sidx/free: not needed by MSE
            taken = offset
            i += 1
        del self._sink.buf[:taken]
        return out

    def close(self) -> None:
        for container in (self._container, self._template):
            if container is not None:
                try:
                    container.close()
                except (av.error.FFmpegError, ValueError, OSError):
                    log.debug("closing the live muxer failed", exc_info=True)
        self._container = self._template = None


class JpegTranscoder:
    """Decodes one stream session and encodes JPEG pictures at most ``max_fps`` per second (of source time)."""

    def __init__(self, params: StreamParams, *, max_fps: float = 10.0, quality: int = 80, max_width: int = 1280) -> None:
        self.params = params
        self.interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.quality = quality
        self.max_width = max_width
        self._ctx: Any = None  # an av.VideoCodecContext (decoder)
        self._next = float("-inf")
        self._started = False

    def _decoder(self, first: LivePacket) -> Any:
        ctx: Any = av.CodecContext.create(self.params.codec, "r")
        ctx.width, ctx.height = self.params.width, self.params.height  # MS-MPEG4 frames do not carry their size
        extradata = self.params.extradata or parameter_sets(self.params.codec, first.data)
        if extradata:
            ctx.extradata = extradata
        return ctx

    def push(self, packet: LivePacket, *, want: bool = True) -> list[tuple[LivePacket, bytes]]:
        """Decode ``packet``; the JPEG of its picture when one is due (and ``want``)."""
        if not self._started:
            if not packet.keyframe:
                return []
            self._started = True
        if self._ctx is None:
            self._ctx = self._decoder(packet)
        pkt = av.Packet(packet.data)
        pkt.pts = round(packet.pts * 90000)
        pkt.dts = round(packet.dts * 90000)
        pkt.time_base = TIME_BASE
        try:
            frames = self._ctx.decode(pkt)
        except (av.error.FFmpegError, ValueError) as exc:
            log.debug("live decode error: %s", exc)
            return []
        out = []
        for frame in frames:
            if not want or packet.pts < self._next:
                continue
            self._next = packet.pts + self.interval * 0.95
            out.append((packet, self.encode(frame)))
        return out

    def encode(self, frame: av.VideoFrame) -> bytes:
        width = min(frame.width, self.max_width) // 2 * 2
        height = round(frame.height * width / frame.width) // 2 * 2 if frame.width else frame.height
        image = frame.to_ndarray(format="bgr24", width=width, height=height)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            msg = "JPEG encoding failed"
            raise ValueError(msg)
        return jpeg.tobytes()


def snapshot(packets: list[LivePacket], *, quality: int = 85) -> tuple[LivePacket, bytes] | None:
    """The JPEG of the newest picture decodable from ``packets`` (a GOP: keyframe first), or None."""
    if not packets:
        return None
    coder = JpegTranscoder(packets[0].params, max_fps=0, quality=quality, max_width=4096)
    last: tuple[LivePacket, bytes] | None = None
    ctx = None
    for packet in packets:
        if ctx is None:
            ctx = coder._decoder(packet)
        pkt = av.Packet(packet.data)
        try:
            frames = ctx.decode(pkt)
        except (av.error.FFmpegError, ValueError):
            continue
        for frame in frames:
            last = (packet, frame)  # type: ignore[assignment]
    if ctx is not None:
        try:
            for frame in ctx.decode(None):
                last = (packets[-1], frame)  # type: ignore[assignment]
        except (av.error.FFmpegError, ValueError):
            pass
    if last is None:
        return None
    return last[0], coder.encode(last[1])  # type: ignore[arg-type]
