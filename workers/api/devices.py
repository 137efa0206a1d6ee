"""The API's side of camera devices: publishing device commands (PTZ, presets, home position, device
recordings) on ``tubeline.device-commands.v1`` with a per-user-and-camera rate limit, and reading the
"on device" recording spans the ingest worker stored (:mod:`pipeline.device_recordings`).

The API never talks to a device: the ingest worker that holds the device runs the command (and drops one
older than a minute), so a 202 means "sent", not "done".
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from pipeline.bus.base import Bus, Producer, TopicSpec
from schemas.devices import DeviceCommand
from schemas.topics import DEVICE_COMMANDS


class RateLimited(Exception):
    """Too many commands from one user for one camera; ``retry_after_s`` says when the next is accepted."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many device commands; retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class DeviceDesk:
    """Sends device commands for the API (at most ``per_window`` per user and camera in ``window_s``).

    A ``stop`` that follows a ``move`` of the same user and camera is never refused: a released arrow must
    stop the camera even when the user clicked fast (it still counts towards the window).
    """

    def __init__(self, bus: Bus | None, *, per_window: int = 10, window_s: float = 2.0) -> None:
        self.bus = bus
        self.per_window = per_window
        self.window_s = window_s
        self._producer: Producer | None = None
        self._sent: dict[tuple[str, str], deque[float]] = {}
        self._moving: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.bus is not None

    def _admit(self, user: str, camera_id: str, action: str) -> None:
        now = time.monotonic()
        who = (user, camera_id)
        with self._lock:
            if len(self._sent) > 10_000:
                self._sent.clear()
                self._moving.clear()
            sent = self._sent.setdefault(who, deque())
            while sent and now - sent[0] > self.window_s:
                sent.popleft()
            stopping = action == "stop" and who in self._moving
            if len(sent) >= self.per_window and not stopping:
                raise RateLimited(self.window_s - (now - sent[0]))
            sent.append(now)
            if action == "move":
                self._moving.add(who)
            elif action in ("stop", "preset_call", "home"):
                self._moving.discard(who)

    def prepare(self, camera_id: str, user: str, action: str, **params: Any) -> DeviceCommand:
        """Validate and rate-limit one command (raises ``ValueError``, :class:`RateLimited`); not sent yet."""
        command = DeviceCommand(command_id=f"cmd-{uuid.uuid4().hex[:20]}", camera_id=camera_id, action=action,
                                requested_by=user, requested_at=datetime.now(UTC), **params)
        self._admit(user, camera_id, action)
        return command

    def publish(self, command: DeviceCommand) -> None:
        """Put the command on the bus (after the API audited it)."""
        if self.bus is None:
            msg = "no message bus: device commands need the ingest worker on a shared bus"
            raise RuntimeError(msg)
        camera_id = command.camera_id
        with self._lock:
            if self._producer is None:
                self.bus.ensure_topics([TopicSpec(DEVICE_COMMANDS.name, DEVICE_COMMANDS.partitions,
                                                  DEVICE_COMMANDS.retention_ms)])
                self._producer = self.bus.producer()
            producer = self._producer
        producer.send(DEVICE_COMMANDS.name, command.to_json(), key=camera_id)
        producer.flush(timeout=10)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
