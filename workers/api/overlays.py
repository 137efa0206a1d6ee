"""Detections for live overlays: boxes, track IDs and classes per camera, from ``tubeline.detections.v1``.

One background thread per API process follows the detections topic in a consumer group of its own (never
committed, as the alert follower does), so every replica sees every camera. Messages older than
``max_age_s`` by their record timestamp are skipped without parsing (a new group starts at the earliest
retained offset; "now" is a filter, not a seek — see :mod:`pipeline.alerts`). Each camera keeps its newest
few frames of detections; live viewers that asked for overlays get each new one as it arrives.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import uuid
from collections.abc import Callable

from pipeline.bus.base import Bus, Message
from pipeline.runtime.background import BackgroundLoop, follow_fresh
from schemas.detections import Detections
from schemas.topics import DETECTIONS

log = logging.getLogger(__name__)

KEEP_PER_CAMERA = 50


def overlay_json(det: Detections) -> str:
    """The overlay message a viewer draws: normalised boxes (0..1), class, track, score, capture time."""
    w, h = float(det.frame_width), float(det.frame_height)
    objects = [{"box": [round(o.box[0] / w, 4), round(o.box[1] / h, 4), round(o.box[2] / w, 4), round(o.box[3] / h, 4)],
                "class": o.class_name, "track": o.track_id.rsplit(":", 1)[-1] if o.track_id else None,
                "score": round(o.score, 3)} for o in det.objects]
    return json.dumps({"type": "detections", "captured_ms": round(det.captured_at.timestamp() * 1000, 1),
                       "objects": objects}, separators=(",", ":"))


class OverlayHub:
    """Follows the detections topic; fans each camera's detections out to its overlay subscribers."""

    def __init__(self, bus: Bus | None, *, max_age_s: float = 30.0) -> None:
        self.bus = bus
        self.max_age_s = max_age_s
        self._recent: dict[str, collections.deque[str]] = {}
        self._subs: dict[str, set[Callable[[str], None]]] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("api-overlays", self._follow, what="detections follower")
        self.received = 0

    def start(self) -> None:
        if self.bus is not None:
            self._loop.start()

    def _follow(self, stop: threading.Event) -> None:
        assert self.bus is not None
        follow_fresh(self.bus, DETECTIONS.name, f"tubeline-api-overlays-{uuid.uuid4().hex[:12]}", stop,
                     self._handle, max_age_s=self.max_age_s)

    def _handle(self, message: Message) -> None:
        try:
            det = Detections.from_json(message.value)
        except ValueError:
            return
        self.publish(det)

    def publish(self, det: Detections) -> None:
        text = overlay_json(det)
        with self._lock:
            self.received += 1
            self._recent.setdefault(det.camera_id, collections.deque(maxlen=KEEP_PER_CAMERA)).append(text)
            subs = list(self._subs.get(det.camera_id, ()))
        for send in subs:
            send(text)

    def subscribe(self, camera_id: str, send: Callable[[str], None]) -> list[str]:
        """Register ``send`` (called from the follower thread) and return the camera's recent overlays."""
        with self._lock:
            self._subs.setdefault(camera_id, set()).add(send)
            return list(self._recent.get(camera_id, ()))

    def unsubscribe(self, camera_id: str, send: Callable[[str], None]) -> None:
        with self._lock:
            self._subs.get(camera_id, set()).discard(send)

    def stop(self) -> None:
        self._loop.stop()
