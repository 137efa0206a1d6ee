"""Live packets over the bus (``tubeline.live.v1``): ingest publishes, each API process follows into its hub.

:class:`TopicLiveSink` is what a distributed ingest worker hands its cameras' packets to: each packet is one
message (value: the encoded packet; key: the camera; headers: :class:`schemas.live.LivePacketHeader`, the
codec's extradata on keyframes). Sends are asynchronous (the producer batches for a few milliseconds); a failed
send loses live packets, never stops ingest.

:class:`LiveTopicFollower` runs in each API process: a consumer group of its own (never committed, so every
replica sees every camera) reads the topic and feeds the process's :class:`pipeline.live.hub.LiveHub`. A new
group starts at the earliest retained offset (the local broker reports the latest offset unreliably, see
``pipeline.alerts``), so packets older than ``max_age_s`` by their record timestamp are skipped unparsed:
"now" is a filter, not a seek; with the topic's retention of minutes the catch-up is bounded.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid

from pipeline.bus.base import Bus, Message, Producer, TopicSpec
from pipeline.live.hub import LiveHub, LivePacket, StreamParams
from pipeline.runtime.background import BackgroundLoop, follow_fresh
from schemas.live import MAX_EXTRADATA, LivePacketHeader
from schemas.topics import LIVE

log = logging.getLogger(__name__)

MAX_PACKET = 8 << 20
SEGMENT_MS = "30000"


def live_topic_spec() -> TopicSpec:
    """The topic with short retention and short segments, so the broker can drop old packets soon."""
    return TopicSpec(LIVE.name, LIVE.partitions, LIVE.retention_ms, {"segment.ms": SEGMENT_MS})


class TopicLiveSink:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.sent = 0
        self.failed = 0

    def publish(self, packet: LivePacket) -> None:
        p = packet.params
        extradata = p.extradata if packet.keyframe and len(p.extradata) <= MAX_EXTRADATA else b""
        header = LivePacketHeader(camera_id=p.camera_id, session=p.session, codec=p.codec, width=max(1, p.width),
                                  height=max(1, p.height), fps=float(p.fps or 0.0), pts=packet.pts, dts=packet.dts,
                                  keyframe=packet.keyframe, captured_at=packet.captured_at,
                                  extradata=base64.b64encode(extradata).decode())
        try:
            self.producer.send(LIVE.name, packet.data, key=p.camera_id, headers=header.to_headers())
            self.sent += 1
        except Exception:
            self.failed += 1
            if self.failed in (1, 100, 10_000):
                log.warning("live packets could not be sent (%d so far)", self.failed, exc_info=True)

    def end(self, camera_id: str) -> None:
        """Viewers notice the silence (the hub calls a camera not live after a few seconds without packets)."""


class LiveTopicFollower:
    """Feeds a hub from the live topic until stopped."""

    def __init__(self, bus: Bus, hub: LiveHub, *, max_age_s: float = 3.0) -> None:
        self.bus = bus
        self.hub = hub
        self.max_age_s = max_age_s
        self._params: dict[str, StreamParams] = {}
        self._loop = BackgroundLoop("api-live-follower", self._follow, what="live follower")
        self.received = 0
        self.skipped = 0
        self.invalid = 0

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _follow(self, stop: threading.Event) -> None:
        follow_fresh(self.bus, LIVE.name, f"tubeline-api-live-{uuid.uuid4().hex[:12]}", stop, self.handle,
                     max_age_s=self.max_age_s, on_stale=self._stale)

    def _stale(self) -> None:
        self.skipped += 1

    def handle(self, message: Message) -> None:
        """One message into the hub (malformed ones are counted and dropped)."""
        if len(message.value) > MAX_PACKET:
            self.invalid += 1
            return
        try:
            header = LivePacketHeader.from_headers(message.headers)
        except ValueError:
            self.invalid += 1
            return
        params = self._params.get(header.camera_id)
        if params is None or params.session != header.session:
            if not header.keyframe:
                return  # a viewer can only start on a keyframe of the session
            params = StreamParams(header.camera_id, header.session, header.codec, header.width, header.height,
                                  header.fps or None, header.extradata_bytes())
            self._params[header.camera_id] = params
        self.received += 1
        self.hub.publish(LivePacket(params, message.value, header.pts, header.dts, header.keyframe,
                                    header.captured_at))
