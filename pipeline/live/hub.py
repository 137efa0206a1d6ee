"""The live fan-out: each camera's original packets, from the ingest reader to every viewer.

Ingest offers every encoded packet of a camera (never re-encoded) with the stream's parameters;
the hub keeps, per camera, the packets since the last keyframe (the "GOP cache", bounded in
packets and bytes) so a new viewer starts at once from a decodable picture, and hands each new
packet to the camera's subscribers. Subscribers are bounded queues: a viewer that falls behind
(its queue is full) loses packets up to the next keyframe — counted, never blocking ingest or
other viewers — and resumes on that keyframe, because a partial group of pictures does not decode.

The hub lives in one process. In the embedded deployment (``tubeline up``) ingest and the API share
it; in the distributed one ingest publishes packets on ``tubeline.live.v1`` and each API process
feeds its own hub from that topic (:mod:`pipeline.live.topic`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)

GOP_MAX_PACKETS = 600
GOP_MAX_BYTES = 16 << 20
QUEUE_PACKETS = 300
HISTORY_S = 10.0
HISTORY_BYTES = 32 << 20


@dataclass(frozen=True)
class StreamParams:
    """What a viewer needs to mux or decode one camera's packets (one ingest source session)."""

    camera_id: str
    session: str
    codec: str
    width: int
    height: int
    fps: float | None
    extradata: bytes = b""

    def describe(self) -> str:
        rate = f" {self.fps:g} fps" if self.fps else ""
        return f"{self.codec} {self.width}x{self.height}{rate}"


@dataclass(frozen=True, eq=False)
class LivePacket:
    """One encoded packet: times in seconds on the source clock (``pts``/``dts``) and UTC capture time."""

    params: StreamParams
    data: bytes
    pts: float
    dts: float
    keyframe: bool
    captured_at: datetime
    received: float = field(default_factory=time.monotonic)


class Subscription:
    """One viewer's queue of packets. ``get`` is called from the viewer's thread or event loop."""

    def __init__(self, hub: LiveHub, camera_id: str, notify: Callable[[], None] | None = None,
                 size: int = QUEUE_PACKETS) -> None:
        self.hub = hub
        self.camera_id = camera_id
        self._notify = notify
        self._size = size
        self._queue: collections.deque[LivePacket] = collections.deque()
        self._cond = threading.Condition()
        self._dropping = False
        self.dropped = 0
        self.closed = False

    def _offer(self, packet: LivePacket) -> None:
        with self._cond:
            if self._dropping and not packet.keyframe:
                self.dropped += 1
                return
            if len(self._queue) >= self._size:
                self._queue.clear()  # behind by a whole queue: resume at the next keyframe
                self._dropping = True
                self.dropped += 1
                if not packet.keyframe:
                    return
            self._dropping = False
            self._queue.append(packet)
            self._cond.notify()
        if self._notify is not None:
            self._notify()

    def take(self) -> list[LivePacket]:
        """Every queued packet (possibly none), without waiting."""
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            return items

    def get(self, timeout: float) -> list[LivePacket]:
        """Queued packets, waiting up to ``timeout`` seconds for the first."""
        with self._cond:
            if not self._queue and not self.closed:
                self._cond.wait(timeout)
            items = list(self._queue)
            self._queue.clear()
            return items

    def close(self) -> None:
        self.hub.unsubscribe(self)
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class _Channel:
    def __init__(self) -> None:
        self.params: StreamParams | None = None
        self.gop: list[LivePacket] = []
        self.gop_bytes = 0
        self.history: collections.deque[list[LivePacket]] = collections.deque()  # earlier GOPs, oldest first
        self.history_bytes = 0
        self.subscribers: set[Subscription] = set()
        self.packets = 0
        self.bytes = 0
        self.last_packet: float | None = None
        self.last_captured: datetime | None = None
        self.rate: collections.deque[tuple[float, int]] = collections.deque(maxlen=256)
        self.ended = False


@dataclass(frozen=True)
class ChannelState:
    """A camera's live state, for status displays."""

    camera_id: str
    params: StreamParams | None
    live: bool
    age_s: float | None
    fps: float
    kbps: float
    viewers: int
    last_captured: datetime | None


class LiveHub:
    """Per-camera GOP caches and subscribers. Thread-safe."""

    def __init__(self, *, gop_max_packets: int = GOP_MAX_PACKETS, gop_max_bytes: int = GOP_MAX_BYTES,
                 stale_s: float = 5.0) -> None:
        self.gop_max_packets = gop_max_packets
        self.gop_max_bytes = gop_max_bytes
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}

    def _channel(self, camera_id: str) -> _Channel:
        ch = self._channels.get(camera_id)
        if ch is None:
            ch = self._channels[camera_id] = _Channel()
        return ch

    # -- ingest side -------------------------------------------------------------------------------
    def publish(self, packet: LivePacket) -> None:
        with self._lock:
            ch = self._channel(packet.params.camera_id)
            if ch.params != packet.params:
                ch.params, ch.gop, ch.gop_bytes = packet.params, [], 0
                ch.history.clear()
                ch.history_bytes = 0
            ch.ended = False
            if packet.keyframe:
                self._retire_gop(ch, packet)
            if ch.gop or packet.keyframe:
                if len(ch.gop) < self.gop_max_packets and ch.gop_bytes + len(packet.data) <= self.gop_max_bytes:
                    ch.gop.append(packet)
                    ch.gop_bytes += len(packet.data)
            ch.packets += 1
            ch.bytes += len(packet.data)
            ch.last_packet = packet.received
            ch.last_captured = packet.captured_at
            ch.rate.append((packet.received, len(packet.data)))
            subs = list(ch.subscribers)
        for sub in subs:
            sub._offer(packet)

    @staticmethod
    def _retire_gop(ch: _Channel, keyframe: LivePacket) -> None:
        """Move the finished GOP into the history (a few seconds of pictures for snapshots at a moment)."""
        if ch.gop:
            ch.history.append(ch.gop)
            ch.history_bytes += ch.gop_bytes
        while ch.history and (ch.history_bytes > HISTORY_BYTES or (
                keyframe.captured_at - ch.history[0][0].captured_at).total_seconds() > HISTORY_S):
            old = ch.history.popleft()
            ch.history_bytes -= sum(len(p.data) for p in old)
        ch.gop, ch.gop_bytes = [], 0

    def gop_at(self, camera_id: str, at: datetime) -> list[LivePacket]:
        """The cached GOP that holds the picture captured at ``at`` (up to ``HISTORY_S`` back), cut after it."""
        with self._lock:
            ch = self._channels.get(camera_id)
            if ch is None:
                return []
            gops = [*ch.history, ch.gop] if ch.gop else list(ch.history)
        chosen: list[LivePacket] = []
        for gop in gops:
            if gop and gop[0].captured_at <= at:
                chosen = gop
        return [p for p in chosen if p.captured_at <= at] or chosen[:1]

    def end(self, camera_id: str) -> None:
        """The camera's source session ended (end of file, disconnect): viewers see it as not live."""
        with self._lock:
            ch = self._channel(camera_id)
            ch.ended = True
            ch.gop, ch.gop_bytes = [], 0
            ch.history.clear()
            ch.history_bytes = 0

    # -- viewer side -------------------------------------------------------------------------------
    def subscribe(self, camera_id: str, notify: Callable[[], None] | None = None,
                  size: int = QUEUE_PACKETS) -> Subscription:
        """A subscription that starts with the cached packets since the last keyframe."""
        sub = Subscription(self, camera_id, notify, size)
        with self._lock:
            ch = self._channel(camera_id)
            ch.subscribers.add(sub)
            for packet in ch.gop:
                sub._queue.append(packet)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            ch = self._channels.get(sub.camera_id)
            if ch is not None:
                ch.subscribers.discard(sub)

    def latest_gop(self, camera_id: str) -> list[LivePacket]:
        """The packets since the camera's last keyframe (empty when it is not live)."""
        with self._lock:
            ch = self._channels.get(camera_id)
            return list(ch.gop) if ch is not None else []

    def state(self, camera_id: str) -> ChannelState:
        now = time.monotonic()
        with self._lock:
            ch = self._channels.get(camera_id) or _Channel()
            age = None if ch.last_packet is None else now - ch.last_packet
            recent = [(t, n) for t, n in ch.rate if now - t <= 2.0]
            span = (recent[-1][0] - recent[0][0]) if len(recent) > 1 else 0.0
            fps = (len(recent) - 1) / span if span > 0 else 0.0
            kbps = sum(n for _, n in recent[1:]) * 8 / 1000 / span if span > 0 else 0.0
            live = age is not None and age < self.stale_s and not ch.ended
            return ChannelState(camera_id, ch.params, live, age, fps, kbps, len(ch.subscribers), ch.last_captured)

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._channels)
