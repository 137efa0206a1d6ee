"""Ingest's tap into the live fan-out: every encoded packet of a camera, as read, with its stream parameters.

The camera runner calls :meth:`LiveTap.begin` when a source session opens (while its demuxer is open, so the
codec's extradata can be copied), :meth:`LiveTap.offer` for each packet before the recorder sees it, and
:meth:`LiveTap.end` when the session ends. Packets go to a :class:`LiveSink`: the in-process
:class:`pipeline.live.hub.LiveHub` (embedded ``tubeline up``) or the live topic (:mod:`pipeline.live.topic`).
Nothing here waits: a sink that cannot keep up drops, it never slows the reader.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Protocol

from pipeline.live.hub import LivePacket, StreamParams
from workers.ingest.sources.base import SourceItem, StreamInfo

log = logging.getLogger(__name__)


class LiveSink(Protocol):
    def publish(self, packet: LivePacket) -> None: ...

    def end(self, camera_id: str) -> None: ...


def _extradata(info: StreamInfo) -> bytes:
    template = info.template
    if template is None:
        return b""
    try:
        data = template.codec_context.extradata
    except AttributeError:
        return b""
    return bytes(data) if data else b""


class LiveTap:
    """One camera's packets into a :class:`LiveSink`."""

    def __init__(self, camera_id: str, session: str, sink: LiveSink) -> None:
        self.camera_id = camera_id
        self.session = session
        self.sink = sink
        self.params: StreamParams | None = None
        self._opens = 0
        self.errors = 0

    def begin(self, info: StreamInfo) -> None:
        self._opens += 1
        self.params = StreamParams(self.camera_id, f"{self.session}-{self._opens}", info.codec, info.width,
                                   info.height, info.fps, _extradata(info))

    def offer(self, item: SourceItem) -> None:
        packet, params = item.packet, self.params
        if packet is None or params is None:
            return
        try:
            tb = packet.time_base or Fraction(1, 90000)
            dts = float(packet.dts * tb) if packet.dts is not None else item.pts
            self.sink.publish(LivePacket(params, bytes(packet), item.pts, dts, item.keyframe, item.captured_at))
        except Exception:  # the live view must never break ingest
            self.errors += 1
            if self.errors in (1, 100, 10_000):
                log.warning("camera %s: live fan-out failed (%d times)", self.camera_id, self.errors, exc_info=True)

    def end(self) -> None:
        try:
            self.sink.end(self.camera_id)
        except Exception:
            log.warning("camera %s: live fan-out end failed", self.camera_id, exc_info=True)
