"""Forwarding one camera's live stream to a superior platform as PS over RTP (the cascade's media side).

The camera's original encoded packets (a tap on its camera runner: nothing is decoded or re-encoded) are put
in Annex-B form (FFmpeg's ``*_mp4toannexb`` filter for MP4-style packets), given the parameter sets on every
keyframe, muxed into one PS pack per frame and cut into RTP packets (:mod:`workers.ingest.gb28181.psmux`) with
the SSRC the superior asked for (``y=``). Transport as negotiated: UDP to the superior's ``c=``/``m=``, TCP to
it (it listens: ``a=setup:passive`` in its offer) or TCP from it (we listen). Forwarding starts at the next
keyframe. A bounded queue sits between the camera's reader thread and the sender: when the superior is too
slow, frames are dropped up to the next keyframe (counted), the camera never waits.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
from collections.abc import Callable
from fractions import Fraction

import av

from workers.ingest.gb28181 import psmux
from workers.ingest.gb28181.media import PortAllocator
from workers.ingest.sources.base import SourceItem, StreamInfo

Tap = Callable[[SourceItem, StreamInfo], None]

log = logging.getLogger(__name__)

QUEUE_FRAMES = 100


class Forwarder:
    def __init__(self, camera_id: str, *, ssrc: int, mode: str, host: str, port: int, ports: PortAllocator,
                 bind_host: str) -> None:
        if mode not in ("udp", "tcp_connect", "tcp_listen"):
            msg = f"unknown forwarding mode {mode!r}"
            raise ValueError(msg)
        self.camera_id, self.ssrc, self.mode, self.dest = camera_id, ssrc, mode, (host, port)
        self.frames_sent = self.frames_dropped = self.packets_sent = 0
        self._sock: socket.socket | None = None
        self._listener: socket.socket | None = None
        if mode == "udp":
            self._sock = ports.bind(bind_host, socket.SOCK_DGRAM)
            self.port = self._sock.getsockname()[1]
        elif mode == "tcp_listen":
            self._listener = ports.bind(bind_host, socket.SOCK_STREAM)
            self._listener.listen(1)
            self.port = self._listener.getsockname()[1]
        else:
            self.port = 9  # we connect out; the port in our answer is not used (RFC 4145 "discard")
        self._queue: collections.deque[tuple[bytes, int, bool]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self.started = False
        self._need_key = True
        self._params = b""
        self._bsf: av.bitstream.BitStreamFilterContext | None = None
        self._remove_tap: object = None
        self._thread = threading.Thread(target=self._run, name=f"gb-forward-{camera_id}", daemon=True)

    # -- camera reader side ----------------------------------------------------------------------------
    def on_item(self, item: SourceItem, info: StreamInfo) -> None:
        packet = item.packet
        if packet is None or packet.pts is None or self._closed.is_set():
            return
        codec = info.codec if info.codec in psmux.STREAM_TYPE else None
        if codec is None:
            return
        if self._need_key and not item.keyframe:
            return
        data = self._annex_b(packet, info)
        if data is None:
            return
        if item.keyframe:
            found = psmux.parameter_sets(data, codec)
            if found:
                self._params = found
            elif self._params:
                data = self._params + data
        tb = packet.time_base or info.time_base or Fraction(1, 90000)
        pts = round(float(packet.pts * tb) * 90000)
        pack = psmux.ps_pack(data, pts, codec, item.keyframe)
        with self._cond:
            if len(self._queue) >= QUEUE_FRAMES:
                self._queue.clear()
                self.frames_dropped += QUEUE_FRAMES
                self._need_key = True
                if not item.keyframe:
                    return
            self._need_key = False
            self._queue.append((pack, pts, item.keyframe))
            self._cond.notify()

    def _annex_b(self, packet: av.Packet, info: StreamInfo) -> bytes | None:
        data = bytes(packet)
        if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
            return data
        try:
            if self._bsf is None:
                self._bsf = av.bitstream.BitStreamFilterContext(f"{info.codec}_mp4toannexb", info.template)
            return b"".join(bytes(p) for p in self._bsf.filter(packet))
        except (av.error.FFmpegError, ValueError, TypeError) as exc:
            log.warning("forwarding %s: cannot put %s packets in Annex-B form: %s", self.camera_id, info.codec, exc)
            self._closed.set()
            return None

    # -- sender thread -----------------------------------------------------------------------------------
    def start(self, add_tap: Callable[[Tap], Callable[[], None]]) -> None:
        """Start sending; ``add_tap`` is the camera runner's (:meth:`workers.ingest.camera.CameraRunner.add_tap`)."""
        self.started = True
        self._thread.start()
        self._remove_tap = add_tap(self.on_item)

    def _connect(self) -> socket.socket | None:
        if self.mode == "udp":
            return self._sock
        if self.mode == "tcp_listen":
            assert self._listener is not None
            self._listener.settimeout(15.0)
            try:
                conn, _ = self._listener.accept()
            except OSError as exc:
                log.info("forwarding %s: the superior did not connect: %s", self.camera_id, exc)
                return None
            return conn
        for _ in range(5):  # 2022: the TCP client retries at least 3 times, at least 1 s apart
            try:
                return socket.create_connection(self.dest, timeout=3)
            except OSError as exc:
                log.debug("forwarding %s: connect to %s failed: %s", self.camera_id, self.dest, exc)
                if self._closed.wait(1.0):
                    return None
        return None

    def _run(self) -> None:
        sock = self._connect()
        if sock is None:
            self._closed.set()
            return
        self._sock = sock
        seq = 0
        try:
            while not self._closed.is_set():
                with self._cond:
                    while not self._queue and not self._closed.is_set():
                        self._cond.wait(0.5)
                    if self._closed.is_set():
                        return
                    pack, pts, _key = self._queue.popleft()
                packets = psmux.rtp_packets(pack, seq=seq, timestamp=pts, ssrc=self.ssrc)
                seq = (seq + len(packets)) & 0xFFFF
                for rtp in packets:
                    if self.mode == "udp":
                        sock.sendto(rtp, self.dest)
                    else:
                        sock.sendall(psmux.rfc4571(rtp))
                self.packets_sent += len(packets)
                self.frames_sent += 1
        except OSError as exc:
            log.info("forwarding %s to %s:%d stopped: %s", self.camera_id, *self.dest, exc)
        finally:
            self._closed.set()

    def close(self) -> None:
        self._closed.set()
        if callable(self._remove_tap):
            self._remove_tap()
        with self._cond:
            self._cond.notify_all()
        for sock in (self._sock, self._listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        if self.started and self._thread is not threading.current_thread():
            self._thread.join(3)
        log.info("forwarding %s ended: %d frames (%d RTP packets) sent, %d dropped", self.camera_id,
                 self.frames_sent, self.packets_sent, self.frames_dropped)
