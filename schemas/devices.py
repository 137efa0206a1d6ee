"""Commands for camera devices, on ``tubeline.device-commands.v1`` (key = camera ID): PTZ moves and stops, presets,
the home position, and device-side recordings (RecordInfo refresh, download).

The API publishes them after checking the user's role, scope and rate limit (and audits the request); the ingest
worker that holds the camera's GB/T 28181 device executes them and ignores the rest (and any command older
than a minute: a camera must not move because a stale command was read again). ``command_id`` is the
idempotency key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

from schemas.common import CameraId, StableId, UtcDateTime, WireMessage, type_field

DeviceAction = Literal["move", "stop", "preset_set", "preset_call", "preset_delete", "home", "record_info",
                       "download"]
Direction = Annotated[int, Strict(), Field(ge=-1, le=1)]


class DeviceCommand(WireMessage):
    """One command for the device behind a camera."""

    SCHEMA_NAME = "device_command"

    type: Literal["device_command"] = type_field("device_command")
    command_id: StableId = Field(title="Command ID", description="Unique ID of this command; the idempotency key.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera (GB channel); also the Kafka key.")
    action: DeviceAction = Field(
        title="Action",
        description="move (pan/tilt/zoom at speed until stop), stop, preset_set/preset_call/preset_delete (preset), "
                    "home (home position: preset, enabled, reset_s), record_info (refresh the on-device recordings "
                    "of start..end), download (the device's recording of start..end into recordings).",
    )
    pan: Direction = Field(default=0, title="Pan", description="-1 left, 0 none, 1 right (move).")
    tilt: Direction = Field(default=0, title="Tilt", description="-1 down, 0 none, 1 up (move).")
    zoom: Direction = Field(default=0, title="Zoom", description="-1 out (wide), 0 none, 1 in (tele) (move).")
    speed: Annotated[int, Strict(), Field(ge=1, le=255)] = Field(
        default=128, title="Speed", description="Pan/tilt speed 1-255; zoom uses the top 4 bits (move)."
    )
    preset: Annotated[int, Strict(), Field(ge=1, le=255)] | None = Field(
        default=None, title="Preset", description="Preset number 1-255 (preset_*, home)."
    )
    enabled: bool = Field(default=True, title="Home enabled", description="home: switch the home position on or off.")
    reset_s: Annotated[int, Strict(), Field(ge=0, le=86400)] = Field(
        default=60, title="Home reset", description="home: seconds of inactivity before returning home."
    )
    start: UtcDateTime | None = Field(default=None, title="Start", description="record_info, download: range start.")
    end: UtcDateTime | None = Field(default=None, title="End", description="record_info, download: range end.")
    requested_by: Annotated[str, Strict(), Field(min_length=1, max_length=64)] = Field(
        title="Requested by", description="The user (audited by the API)."
    )
    requested_at: UtcDateTime = Field(title="Requested at", description="UTC time of the request.")

    @model_validator(mode="after")
    def _fields_for_action(self) -> Self:
        if self.action.startswith("preset_") and self.preset is None:
            msg = f"{self.action} needs a preset number"
            raise ValueError(msg)
        if self.action in ("record_info", "download"):
            if self.start is None or self.end is None or self.end <= self.start:
                msg = f"{self.action} needs start < end"
                raise ValueError(msg)
        if self.action == "move" and not (self.pan or self.tilt or self.zoom):
            msg = "move needs a direction (pan, tilt or zoom); use stop to stop"
            raise ValueError(msg)
        return self

    def idempotency_key(self) -> str:
        return self.command_id

    @classmethod
    def example(cls) -> Self:
        return cls(command_id="cmd-0c8d7f4e2a1b", camera_id="34020000001320000001", action="move", pan=-1, tilt=1,
                   speed=96, requested_by="op1", requested_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
