"""One live viewer: a camera's packets from the hub to a browser's WebSocket, as fMP4 or JPEG.

Binary WebSocket messages are ``type (1 byte) | capture time, ms since the epoch (float64, big-endian) |
media time, s (float64) | payload``; ``type`` is 1 for the fMP4 init segment, 2 for an fMP4 fragment (one
frame), 3 for a JPEG picture. Text messages are JSON: ``hello`` (mode, codec, MIME type for MSE, size, rate,
whether the server transcodes), ``detections`` (overlay boxes, when asked for) and ``status`` (the camera
went quiet or came back).

fMP4 is the original stream remuxed (H.264, H.265): no decoding on the server. Other codecs — and any camera
when the browser asks for ``mode=jpeg`` because it cannot play the codec — are decoded and sent as JPEG at
most ``api.live_jpeg_max_fps`` pictures per second: a transcode, said so in ``hello``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from pipeline.live.hub import LiveHub, LivePacket, StreamParams
from pipeline.live.remux import MSE_CODECS, Fmp4Muxer, Fragment, JpegTranscoder

log = logging.getLogger(__name__)

INIT, MEDIA, JPEG = 1, 2, 3
_HEAD = struct.Struct(">Bdd")


def frame_message(kind: int, captured_ms: float | None, media_s: float, payload: bytes) -> bytes:
    return _HEAD.pack(kind, math.nan if captured_ms is None else captured_ms, media_s) + payload


@dataclass
class ViewerStats:
    started: float = field(default_factory=time.monotonic)
    bytes: int = 0
    frames: int = 0
    packets: int = 0
    sessions: int = 0

    @property
    def duration_s(self) -> float:
        return round(time.monotonic() - self.started, 3)


def choose_mode(codec: str, requested: str) -> str:
    if requested == "jpeg" or codec not in MSE_CODECS:
        return "jpeg"
    return "fmp4"


def hello(params: StreamParams, mode: str, codec_string: str | None = None) -> str:
    body = {"type": "hello", "camera_id": params.camera_id, "session": params.session, "mode": mode,
            "codec": params.codec, "width": params.width, "height": params.height, "fps": params.fps,
            "transcoded": mode == "jpeg",
            "mime": f'video/mp4; codecs="{codec_string}"' if codec_string else None,
            "note": ("original stream, remuxed to fragmented MP4" if mode == "fmp4" else
                     f"transcoded on the server: {params.codec} decoded and sent as JPEG pictures")}
    return json.dumps(body)


class LiveViewer:
    """Streams one camera to one WebSocket until the client leaves or ``keep_going()`` turns false."""

    def __init__(self, ws: WebSocket, hub: LiveHub, camera_id: str, *, requested: str, jpeg_fps: float,
                 overlays: Callable[[Callable[[str], None]], list[str]] | None = None,
                 drop_overlays: Callable[[Callable[[str], None]], None] | None = None) -> None:
        self.ws = ws
        self.hub = hub
        self.camera_id = camera_id
        self.requested = requested
        self.jpeg_fps = jpeg_fps
        self.stats = ViewerStats()
        self._overlays = overlays
        self._drop_overlays = drop_overlays
        self._params: StreamParams | None = None
        self._muxer: Fmp4Muxer | None = None
        self._jpeg: JpegTranscoder | None = None
        self._mode = "fmp4"
        self._live: bool | None = None

    async def run(self, keep_going: Callable[[], object], recheck_s: float) -> str:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        texts: asyncio.Queue[str] = asyncio.Queue(200)

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        def overlay(text: str) -> None:
            def put() -> None:
                if not texts.full():
                    texts.put_nowait(text)
                    wake.set()
            loop.call_soon_threadsafe(put)

        sub = self.hub.subscribe(self.camera_id, notify)
        backlog = self._overlays(overlay) if self._overlays is not None else []
        receiver = asyncio.create_task(self._drain_client())
        next_check = time.monotonic() + recheck_s
        try:
            for text in backlog[-3:]:
                await self.ws.send_text(text)
            await self._status()
            while not receiver.done():
                try:
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                wake.clear()
                packets = sub.take()
                if packets:
                    await self._send_packets(packets)
                while not texts.empty():
                    await self.ws.send_text(texts.get_nowait())
                if not packets:
                    await self._status()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + recheck_s
                    reason = await run_in_threadpool(keep_going)
                    if reason:
                        return str(reason)
            return "viewer left"
        finally:
            receiver.cancel()
            sub.close()
            if self._drop_overlays is not None:
                self._drop_overlays(overlay)
            self._close_coders()

    async def _drain_client(self) -> None:
        """Read (and ignore) what the client sends; returns when it disconnects."""
        while True:
            message = await self.ws.receive()
            if message.get("type") == "websocket.disconnect":
                return

    async def _status(self) -> None:
        state = self.hub.state(self.camera_id)
        if state.live != self._live:
            self._live = state.live
            await self.ws.send_text(json.dumps({"type": "status", "live": state.live,
                                                "age_s": None if state.age_s is None else round(state.age_s, 1)}))

    def _close_coders(self) -> None:
        if self._muxer is not None:
            self._muxer.close()
        self._muxer = self._jpeg = None

    async def _send_packets(self, packets: list[LivePacket]) -> None:
        self.stats.packets += len(packets)
        if self._mode == "jpeg" or choose_mode(packets[0].params.codec, self.requested) == "jpeg":
            messages = await run_in_threadpool(self._jpeg_messages, packets)
        else:
            messages = self._fmp4_messages(packets)
        for message in messages:
            if isinstance(message, str):
                await self.ws.send_text(message)
            else:
                self.stats.bytes += len(message)
                await self.ws.send_bytes(message)
        if self._live is not True:
            await self._status()

    def _new_session(self, params: StreamParams) -> list[str | bytes]:
        self._close_coders()
        self._params = params
        self._mode = choose_mode(params.codec, self.requested)
        self.stats.sessions += 1
        if self._mode == "jpeg":
            self._jpeg = JpegTranscoder(params, max_fps=self.jpeg_fps)
            return [hello(params, "jpeg")]
        self._muxer = Fmp4Muxer(params)
        return []

    def _fmp4_messages(self, packets: list[LivePacket]) -> list[str | bytes]:
        out: list[str | bytes] = []
        for packet in packets:
            if packet.params != self._params:
                out += self._new_session(packet.params)
                if self._mode == "jpeg":
                    out += self._jpeg_messages([packet])
                    continue
            assert self._muxer is not None
            try:
                fragments = self._muxer.push(packet)
            except ValueError as exc:  # no parameter sets yet: wait for a keyframe that has them
                log.debug("camera %s: %s", self.camera_id, exc)
                self._muxer = Fmp4Muxer(packet.params)
                continue
            for f in fragments:
                if f.kind == "init":
                    out.append(hello(packet.params, "fmp4", self._muxer.codec_string))
                out.append(self._fragment(f))
        return out

    def _fragment(self, f: Fragment) -> bytes:
        if f.kind == "init":
            return frame_message(INIT, None, 0.0, f.data)
        self.stats.frames += 1
        captured = f.captured_at.timestamp() * 1000 if f.captured_at is not None else None
        return frame_message(MEDIA, captured, f.media_s, f.data)

    def _jpeg_messages(self, packets: list[LivePacket]) -> list[str | bytes]:
        out: list[str | bytes] = []
        for i, packet in enumerate(packets):
            if packet.params != self._params or self._jpeg is None:
                out += self._new_session(packet.params)
                if self._jpeg is None:  # the new session is MSE-playable
                    out += self._fmp4_messages(packets[i:])
                    return out
            # Only the newest due picture of a burst is worth encoding; older ones are decoded, not sent.
            for pkt, jpeg in self._jpeg.push(packet, want=i >= len(packets) - 3):
                self.stats.frames += 1
                out.append(frame_message(JPEG, pkt.captured_at.timestamp() * 1000, pkt.pts, jpeg))
        return out
