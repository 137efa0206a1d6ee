"""Sampling, resizing, JPEG encoding and publishing of frames to the frames topic.

The reader thread offers every decoded frame to the :class:`Sampler`; frames it keeps go into a
bounded :class:`DropQueue`. The publisher thread converts them (one swscale pass: colour + resize),
JPEG-encodes them and sends them keyed by camera with :class:`schemas.frames.FrameHeader` headers.

Drop policy (stated once, here): ``drop_oldest`` — when the queue is full the oldest waiting frame is
discarded and counted in ``dropped``, so latency stays bounded and the freshest picture wins;
``block`` — the reader waits for room (offline files and benchmarks only).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np

from pipeline import metrics
from pipeline.bus.base import Producer
from pipeline.config.ingest import ResizeConfig
from schemas.frames import FrameHeader
from workers.ingest.sources.base import DecodedFrame

log = logging.getLogger(__name__)

T = TypeVar("T")


class Sampler:
    """Keeps frames at ``fps`` by presentation time; resynchronises after gaps and pts jumps back."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            msg = "analysis fps must be positive"
            raise ValueError(msg)
        self.interval = 1.0 / fps
        self._next: float | None = None
        self.skipped = 0

    def take(self, pts: float) -> bool:
        nxt = self._next
        tolerance = self.interval * 0.05
        if nxt is None or pts + 2 * self.interval < nxt:
            self._next = pts + self.interval
            return True
        if pts + tolerance < nxt:
            self.skipped += 1
            return False
        # Keep the grid unless the source fell more than an interval behind it.
        self._next = nxt + self.interval if pts - nxt < self.interval else pts + self.interval
        return True


class DropQueue(Generic[T]):
    """A bounded FIFO whose producer side either drops the oldest item (counted) or blocks."""

    def __init__(self, maxsize: int, policy: str = "drop_oldest") -> None:
        if maxsize < 1:
            msg = "queue size must be at least 1"
            raise ValueError(msg)
        if policy not in ("drop_oldest", "block"):
            msg = f"unknown overflow policy {policy!r}"
            raise ValueError(msg)
        self.maxsize = maxsize
        self.policy = policy
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.high_water = 0

    def put(self, item: T, stop: threading.Event | None = None) -> bool:
        """Add ``item``; False if the queue is closed (or ``stop`` was set while blocking)."""
        with self._cond:
            while self.policy == "block" and len(self._items) >= self.maxsize and not self._closed:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.1)
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> T | None:
        """The oldest item, or None after ``timeout`` seconds or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)


def target_size(width: int, height: int, policy: ResizeConfig) -> tuple[int, int]:
    """Output size for a ``width``×``height`` picture under ``policy`` (even sizes, never upscaled by ``fit``)."""
    if policy.mode == "none":
        return width, height
    if policy.mode == "exact":
        return policy.max_width, policy.max_height
    scale = min(1.0, policy.max_width / width, policy.max_height / height)
    if scale >= 1.0:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class FrameEncoder:
    """Decoded ``av.VideoFrame`` → BGR (resized in the same swscale pass) → JPEG bytes."""

    def __init__(self, resize: ResizeConfig, jpeg_quality: int) -> None:
        self.resize = resize
        self._params = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]

    def to_bgr(self, decoded: DecodedFrame) -> np.ndarray:
        frame = decoded.frame
        width, height = target_size(frame.width, frame.height, self.resize)
        return frame.to_ndarray(format="bgr24", width=width, height=height)

    def encode(self, decoded: DecodedFrame) -> tuple[bytes, int, int]:
        image = self.to_bgr(decoded)
        ok, buf = cv2.imencode(".jpg", image, self._params)
        if not ok:  # pragma: no cover - OpenCV fails only on invalid input
            msg = "JPEG encoding failed"
            raise RuntimeError(msg)
        return buf.tobytes(), image.shape[1], image.shape[0]


@dataclass
class PublishCounters:
    published: int = 0
    bytes: int = 0
    send_errors: int = 0
    encode_errors: int = 0


class FramePublisher:
    """The publisher thread of one camera: queue → JPEG → ``producer.send`` with frame headers."""

    def __init__(
        self,
        camera_id: str,
        session: str,
        producer: Producer,
        topic: str,
        encoder: FrameEncoder,
        queue: DropQueue[tuple[DecodedFrame, str]],
        *,
        on_published: Callable[[FrameHeader], None] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.session = session
        self.producer = producer
        self.topic = topic
        self.encoder = encoder
        self.queue = queue
        self.counters = PublishCounters()
        self.sequence = 0
        self._on_published = on_published
        self._drops_counted = 0
        self._key = camera_id.encode("utf-8")
        self._thread = threading.Thread(target=self._run, name=f"publish-{camera_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            entry = self.queue.get(timeout=0.2)
            if entry is None:
                if self.queue.closed:
                    return
                continue
            self.publish(*entry)

    def publish(self, decoded: DecodedFrame, codec: str) -> None:
        try:
            jpeg, width, height = self.encoder.encode(decoded)
        except Exception:
            self.counters.encode_errors += 1
            log.exception("%s: could not encode a frame", self.camera_id)
            return
        header = FrameHeader(
            camera_id=self.camera_id,
            session=self.session,
            sequence=self.sequence,
            captured_at=decoded.captured_at,
            pts=float(decoded.pts),
            width=width,
            height=height,
            source_codec=_codec_name(codec),
            keyframe=decoded.keyframe,
        )
        try:
            self.producer.send(self.topic, jpeg, key=self._key, headers=header.to_headers())
        except Exception as exc:
            self.counters.send_errors += 1
            metrics.ERRORS.labels("ingest", "bus").inc()
            log.warning("%s: could not publish frame %d: %s", self.camera_id, self.sequence, exc)
            return
        metrics.FRAMES.labels("ingest", self.camera_id, "out").inc()
        if self.queue.dropped > self._drops_counted:
            metrics.FRAMES.labels("ingest", self.camera_id, "dropped").inc(self.queue.dropped - self._drops_counted)
            self._drops_counted = self.queue.dropped
        self.sequence += 1
        self.counters.published += 1
        self.counters.bytes += len(jpeg)
        if self._on_published is not None:
            self._on_published(header)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the frames already queued; never blocks longer than ``timeout``."""
        self.queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: publisher did not stop within %.1f s", self.camera_id, timeout)


def _codec_name(codec: str) -> str:
    cleaned = "".join(c for c in codec.lower() if c.isalnum() or c == "_")[:32]
    return cleaned or "unknown"
