"""The media side of one GB/T 28181 session: receive RTP (UDP, TCP passive, TCP active), filter by SSRC,
reorder, assemble frames, demux PS and queue access units for the decoder.

One receiver thread per session. Access units go into a bounded queue; when it is full the oldest are
dropped and decoding resumes at the next keyframe (counted in ``au_dropped``). Damaged frames (a lost
packet inside) are dropped whole, then everything up to the next keyframe.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass

from workers.ingest.gb28181.ps import (
    STREAM_TYPES,
    AccessUnit,
    AuAssembler,
    PsDemuxer,
    is_keyframe,
    sniff_codec,
)
from workers.ingest.gb28181.rtp import FrameAssembler, Reorderer, Rfc4571Framer, RtpError, parse_rtp

log = logging.getLogger(__name__)

_RECV = 65536


@dataclass
class MediaStats:
    packets: int = 0
    bytes: int = 0
    wrong_ssrc: int = 0
    garbage: int = 0
    frames: int = 0
    damaged_frames: int = 0
    access_units: int = 0
    au_dropped: int = 0
    waiting_keyframe: int = 0


class PortAllocator:
    """Hands out media ports from a range, round-robin, skipping ports in use."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._next = low
        self._lock = threading.Lock()

    def bind(self, host: str, kind: int) -> socket.socket:
        with self._lock:
            for _ in range(self.high - self.low + 1):
                port = self._next
                self._next = self.low if port >= self.high else port + 1
                sock = socket.socket(socket.AF_INET, kind)
                try:
                    sock.bind((host, port))
                except OSError:
                    sock.close()
                    continue
                return sock
        msg = f"no free media port in {self.low}-{self.high} on {host}"
        raise OSError(msg)


class MediaReceiver:
    """Receives one session's RTP and yields access units with their codec."""

    def __init__(self, mode: str, bind_host: str, ports: PortAllocator, *, reorder_window: int = 32,
                 queue_size: int = 256) -> None:
        self.mode = mode
        self.stats = MediaStats()
        self.reorder = Reorderer(reorder_window)
        self._frames = FrameAssembler()
        self._demux = PsDemuxer()
        self._aus = AuAssembler()
        self.ssrc: int | None = None
        self.codec: str | None = None
        self.last_packet = time.monotonic()  # last RTP packet of this session (right SSRC)
        self.last_data = self.last_packet  # last bytes of any kind (garbage and wrong SSRC too)
        self.first_packet: float | None = None
        self._queue: collections.deque[AccessUnit] = collections.deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._need_key = True
        self._closed = threading.Event()
        self._conn: socket.socket | None = None
        self._listen: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._thread: threading.Thread | None = None
        if mode == "udp":
            self._udp = ports.bind(bind_host, socket.SOCK_DGRAM)
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.port = self._udp.getsockname()[1]
        elif mode == "tcp_passive":
            self._listen = ports.bind(bind_host, socket.SOCK_STREAM)
            self._listen.listen(1)
            self.port = self._listen.getsockname()[1]
        else:
            self.port = 0  # tcp_active: we connect to the device

    # -- setup --------------------------------------------------------------------------------------
    def connect(self, host: str, port: int, *, attempts: int = 5, interval_s: float = 1.0) -> None:
        """TCP active: connect to the device's media port, retrying (devices listen only after ACK)."""
        last: OSError | None = None
        for attempt in range(attempts):
            if self._closed.is_set():
                break
            try:
                self._conn = socket.create_connection((host, port), timeout=3)
                return
            except OSError as exc:
                last = exc
                log.debug("media connect %s:%d attempt %d failed: %s", host, port, attempt + 1, exc)
                self._closed.wait(interval_s)
        msg = f"could not connect to the device's media port {host}:{port} after {attempts} attempts: {last}"
        raise ConnectionError(msg)

    def start(self, ssrc: int | None) -> None:
        self.ssrc = ssrc
        self._thread = threading.Thread(target=self._run, name=f"gb-media-{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        for sock in (self._udp, self._listen, self._conn):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3)
        with self._cond:
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- consumer side ------------------------------------------------------------------------------
    def read(self, timeout: float) -> AccessUnit | None:
        with self._cond:
            if not self._queue and not self._closed.is_set():
                self._cond.wait(timeout)
            return self._queue.popleft() if self._queue else None

    # -- receiver thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._udp is not None:
                self._run_udp(self._udp)
            else:
                if self._listen is not None:
                    self._conn = self._accept(self._listen)
                if self._conn is not None:
                    self._run_tcp(self._conn)
        except OSError as exc:
            if not self._closed.is_set():
                log.info("media receiver on port %d stopped: %s", self.port, exc)
        finally:
            self._closed.set()
            with self._cond:
                self._cond.notify_all()

    def _accept(self, listener: socket.socket) -> socket.socket | None:
        while not self._closed.is_set():
            ready, _, _ = select.select([listener], [], [], 0.2)
            if ready:
                conn, addr = listener.accept()
                log.debug("media connection from %s:%d", *addr)
                listener.close()
                self._listen = None
                return conn
        return None

    def _run_udp(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not self._closed.is_set():
            try:
                data = sock.recv(_RECV)
            except TimeoutError:
                self._emit(self.reorder.flush())
                continue
            self._packet(data)

    def _run_tcp(self, conn: socket.socket) -> None:
        framer = Rfc4571Framer()
        conn.settimeout(0.2)
        while not self._closed.is_set():
            try:
                data = conn.recv(_RECV)
            except TimeoutError:
                continue
            if not data:
                log.debug("media TCP connection closed by the device")
                return
            self.last_data = time.monotonic()
            before = framer.garbage_bytes
            for packet in framer.feed(data):
                self._packet(packet)
            if framer.garbage_bytes > before:
                self.stats.garbage += 1

    def _packet(self, data: bytes) -> None:
        now = self.last_data = time.monotonic()
        try:
            packet = parse_rtp(data)
        except RtpError:
            self.stats.garbage += 1
            return
        if self.ssrc is not None and packet.ssrc != self.ssrc:
            self.stats.wrong_ssrc += 1
            return
        self.stats.packets += 1
        self.stats.bytes += len(data)
        self.last_packet = now
        if self.first_packet is None:
            self.first_packet = now
        self._emit(self.reorder.push(packet, now))

    def _emit(self, ordered: list) -> None:
        for packet, gap in ordered:
            for frame in self._frames.push(packet, gap):
                self.stats.frames += 1
                if frame.damaged:
                    self.stats.damaged_frames += 1
                    self._need_key = True
                    self._demux.reset()
                    continue
                pes_list = self._demux.feed(frame.payload) + self._demux.flush()
                for pes in pes_list:
                    self._queue_aus(self._aus.push(pes, self._demux.stream_types))
                self._queue_aus(self._aus.flush(self._demux.stream_types))

    def _queue_aus(self, aus: list[AccessUnit]) -> None:
        for au in aus:
            if not au.data:
                continue
            if self.codec is None:
                self.codec = sniff_codec(au.data) or STREAM_TYPES.get(au.stream_type or -1)
            codec = self.codec or ""
            if self._need_key:
                if not is_keyframe(au.data, codec):
                    self.stats.waiting_keyframe += 1
                    continue
                self._need_key = False
            self.stats.access_units += 1
            with self._cond:
                if len(self._queue) >= self._queue_size:
                    self._queue.clear()
                    self.stats.au_dropped += self._queue_size
                    self._need_key = not is_keyframe(au.data, codec)
                    if self._need_key:
                        continue
                self._queue.append(au)
                self._cond.notify()

    @property
    def ps_errors(self) -> int:
        return self._demux.stats.errors
