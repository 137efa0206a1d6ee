"""Runs device commands (``tubeline.device-commands.v1``, :class:`schemas.devices.DeviceCommand`) for the cameras
whose GB/T 28181 devices are registered at this ingest worker's platform.

Every ingest worker reads every command (its own consumer group, per worker session: a command is for
whichever worker holds the device) and runs those whose camera is a GB channel of one of its online
devices; others are skipped. Commands older than ``MAX_AGE_S`` are dropped, never run: a PTZ camera must
not move because an old command was read again after a restart. Delivery is at most once per worker by
design (offsets are committed before running); the API reports the command as sent, not as done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.bus.base import Bus
from schemas.devices import DeviceCommand
from schemas.topics import DEVICE_COMMANDS
from workers.ingest.gb28181 import control
from workers.ingest.gb28181.queries import QueryBroker, QueryError

log = logging.getLogger(__name__)

MAX_AGE_S = 60.0


class DeviceCommands:
    """The consumer thread and the executor of device commands."""

    def __init__(self, bus: Bus, queries: QueryBroker, *, channel_device: Callable[[str], str | None],
                 recordings: Callable[[DeviceCommand, str], Any] | None = None, group: str) -> None:
        self.bus = bus
        self.queries = queries
        self.channel_device = channel_device
        self.recordings = recordings
        self.group = group
        self.executed: list[DeviceCommand] = []
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gb-device-commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        consumer = self.bus.consumer([DEVICE_COMMANDS.name], self.group)
        try:
            while not self._stop.is_set():
                try:
                    batch = consumer.poll(timeout=0.5, max_records=100)
                except Exception as exc:  # the broker blinked: keep trying
                    log.warning("device commands: poll failed: %s", exc)
                    self._stop.wait(1.0)
                    continue
                if batch:
                    consumer.commit(batch)
                for message in batch:
                    self._one(message.value)
        finally:
            consumer.close()

    def _one(self, value: bytes) -> None:
        try:
            command = DeviceCommand.from_json(value)
        except ValueError as exc:
            log.warning("device commands: skipping an invalid command: %s", str(exc)[:200])
            return
        age = (datetime.now(UTC) - command.requested_at).total_seconds()
        device_id = self.channel_device(command.camera_id)
        if device_id is None or age > MAX_AGE_S:
            self.skipped += 1
            if device_id is not None:
                log.warning("device command %s for %s dropped: %.0f s old", command.action, command.camera_id, age)
            return
        try:
            self.run(command, device_id)
            self.executed.append(command)
        except (QueryError, ValueError) as exc:
            log.warning("device command %s %s for %s failed: %s", command.command_id, command.action,
                        command.camera_id, exc)

    def run(self, command: DeviceCommand, device_id: str) -> None:
        """Carry out one command on ``device_id`` (the device of the command's channel)."""
        sn, channel = self.queries.next_sn(), command.camera_id
        if command.action in ("move", "stop"):
            ptz = control.move(command.pan, command.tilt, command.zoom, command.speed) if command.action == "move" \
                else control.stop()
            body = control.ptz_control(sn, channel, ptz)
        elif command.action.startswith("preset_"):
            op = {"preset_set": control.PRESET_SET, "preset_call": control.PRESET_CALL,
                  "preset_delete": control.PRESET_DELETE}[command.action]
            body = control.ptz_control(sn, channel, control.preset(op, command.preset or 0))
        elif command.action == "home":
            body = control.home_position(sn, channel, enabled=command.enabled, reset_s=command.reset_s,
                                         preset_index=command.preset or 0)
        else:
            if self.recordings is None:
                msg = f"{command.action} is not available here"
                raise ValueError(msg)
            threading.Thread(target=self._safe_recordings, args=(command, device_id), daemon=True,
                             name=f"gb-{command.action}-{channel}").start()
            return
        self.queries.send(device_id, body)
        log.info("device command %s %s sent to %s/%s by %s", command.command_id, command.action, device_id, channel,
                 command.requested_by)

    def _safe_recordings(self, command: DeviceCommand, device_id: str) -> None:
        assert self.recordings is not None
        try:
            self.recordings(command, device_id)
        except Exception as exc:
            log.warning("device command %s %s for %s failed: %s", command.command_id, command.action,
                        command.camera_id, exc)
