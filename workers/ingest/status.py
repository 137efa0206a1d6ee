"""Camera status events on ``tubeline.camera-status.v1``: online, offline (with reason), reconnecting, stats.

Source failure reasons (``workers.ingest.sources.base.REASON_*``) map onto the wire vocabulary of
:class:`schemas.cameras.CameraStatus` (``unreachable`` is sent as ``network``, ``error`` as ``other``); the
full error message goes into ``detail`` (sources never put credentials in their messages).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.bus.base import Bus, Producer
from schemas.cameras import CameraStats, CameraStatus
from schemas.topics import CAMERA_STATUS

log = logging.getLogger(__name__)

_WIRE_REASONS = {
    "timeout": "timeout",
    "auth": "auth",
    "not_found": "not_found",
    "codec": "codec",
    "unreachable": "network",
    "network": "network",
    "protocol": "protocol",
    "eof": "eof",
    "stopped": "stopped",
}

_MAX_DETAIL = 1000


def wire_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return _WIRE_REASONS.get(reason, "other")


@dataclass
class Totals:
    """Cumulative counters of one camera; stats events report the difference between two snapshots."""

    frames_in: int = 0  # frames decoded
    packets_in: int = 0  # packets read (a decoder holds a few back until it is drained at the end of a file)
    frames_out: int = 0
    bytes_in: int = 0
    rtp_received: int = 0
    rtp_lost: int = 0
    rtp_reordered: int = 0
    dropped: int = 0
    decode_errors: int = 0
    record_drops: int = 0


class StatusReporter:
    """Sends status events for one camera (thread-safe) and remembers the last one."""

    def __init__(self, camera_id: str, producer: Producer, topic: str | None = None) -> None:
        self.camera_id = camera_id
        self.producer = producer
        self.topic = topic or CAMERA_STATUS.name
        self._key = camera_id.encode("utf-8")
        self._lock = threading.Lock()
        self.last: CameraStatus | None = None
        self.sent = 0
        self._window_start = time.monotonic()
        self._window_totals = Totals()

    def event(
        self,
        event: str,
        reason: str | None = None,
        detail: str = "",
        *,
        attempt: int | None = None,
        retry_in_s: float | None = None,
        first_frame_s: float | None = None,
    ) -> CameraStatus:
        """Send an ``online``/``offline``/``reconnecting`` event; ``reason`` is a source reason."""
        wire = wire_reason(reason)
        if event == "offline" and wire is None:
            wire = "other"
        if event == "online":
            wire = None
        status = CameraStatus(
            camera_id=self.camera_id,
            observed_at=datetime.now(UTC),
            event=event,  # type: ignore[arg-type]
            reason=wire,  # type: ignore[arg-type]
            detail=detail[:_MAX_DETAIL],
            attempt=attempt if event == "reconnecting" else None,
            retry_in_seconds=float(retry_in_s) if event == "reconnecting" and retry_in_s is not None else None,
            first_frame_seconds=(round(min(float(first_frame_s), 86400.0), 3)
                                 if event == "online" and first_frame_s is not None else None),
        )
        self._send(status)
        return status

    def stats(self, totals: Totals) -> CameraStatus:
        """Send a stats event covering the window since the previous call."""
        now = time.monotonic()
        with self._lock:
            window = max(1e-3, now - self._window_start)
            prev = self._window_totals
            self._window_start, self._window_totals = now, Totals(**vars(totals))
        stats = CameraStats(
            window_seconds=float(min(window, 86400.0)),
            fps_in=_rate(totals.frames_in - prev.frames_in, window, 1000.0),
            fps_out=_rate(totals.frames_out - prev.frames_out, window, 1000.0),
            bitrate_kbps=_rate((totals.bytes_in - prev.bytes_in) * 8 / 1000, window, 10_000_000.0),
            frames_decoded=max(0, totals.frames_in - prev.frames_in),
            decode_errors=max(0, totals.decode_errors - prev.decode_errors),
            frames_dropped=max(0, totals.dropped - prev.dropped),
            recording_drops=max(0, totals.record_drops - prev.record_drops),
            rtp_packets_received=max(0, totals.rtp_received - prev.rtp_received),
            rtp_packets_lost=max(0, totals.rtp_lost - prev.rtp_lost),
            rtp_packets_reordered=max(0, totals.rtp_reordered - prev.rtp_reordered),
        )
        status = CameraStatus(camera_id=self.camera_id, observed_at=datetime.now(UTC), event="stats", stats=stats)
        self._send(status)
        return status

    def _send(self, status: CameraStatus) -> None:
        with self._lock:
            self.last = status
            self.sent += 1
        if status.event != "stats":
            log.info("camera %s: %s%s %s", self.camera_id, status.event,
                     f" ({status.reason})" if status.reason else "", status.detail)
        try:
            self.producer.send(self.topic, status.to_json(), key=self._key)
        except Exception as exc:
            log.warning("camera %s: could not publish status %s: %s", self.camera_id, status.event, exc)


def _rate(amount: float, window: float, cap: float) -> float:
    return float(min(cap, max(0.0, amount / window)))


def fold_status(latest: dict[str, dict[str, Any]], status: CameraStatus) -> None:
    """Fold one event into ``latest`` (camera → row): connection events set the state, stats the rates."""
    row = latest.setdefault(status.camera_id, {
        "camera_id": status.camera_id, "state": "unknown", "reason": None, "since": "", "detail": "",
        "fps_in": None, "fps_out": None, "bitrate_kbps": None, "rtp_lost": 0, "dropped": 0, "stats_at": None,
    })
    when = status.observed_at.isoformat()
    if status.event == "stats" and status.stats is not None:
        if row["stats_at"] is None or when >= row["stats_at"]:
            s = status.stats
            row.update(fps_in=s.fps_in, fps_out=s.fps_out, bitrate_kbps=s.bitrate_kbps,
                       rtp_lost=s.rtp_packets_lost, dropped=s.frames_dropped, stats_at=when)
        return
    if when >= row["since"]:
        row.update(state=status.event, reason=status.reason, since=when, detail=status.detail)


def read_latest_status(bus: Bus, *, group: str, idle_s: float = 3.0, deadline: float | None = None,
                       topic: str | None = None) -> dict[str, dict[str, Any]]:
    """Read the status topic from the start (a throw-away group, never committed) until ``idle_s``
    seconds pass without a message after joining; the latest state and stats per camera."""
    if deadline is None:
        deadline = time.monotonic() + 60.0
    consumer = bus.consumer([topic or CAMERA_STATUS.name], group)
    latest: dict[str, dict[str, Any]] = {}
    last_message = time.monotonic()
    joined = False
    try:
        while not joined or time.monotonic() - last_message < idle_s:
            if time.monotonic() > deadline:
                break
            batch = consumer.poll(timeout=0.5, max_records=1000)
            if not joined and (batch or consumer.assignment()):
                joined, last_message = True, time.monotonic()  # the group join can take seconds
            for message in batch:
                last_message = time.monotonic()
                try:
                    fold_status(latest, CameraStatus.from_json(message.value))
                except ValueError:
                    log.debug("skipping an invalid status message at offset %d", message.offset)
    finally:
        consumer.close()
    return latest
