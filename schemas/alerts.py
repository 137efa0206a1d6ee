"""Alerts raised by the rules, plate, quality and ingest workers (device alarms), on ``tubeline.alerts.v1``.

An alert names the rule that fired, the camera, the moment, the track when there is one,
and the object-store keys of its evidence (crops). ``details`` carries type-specific,
flat facts (the zone, the crossing direction, the dwell time, the hotlist and its reason).
``alert_id`` is derived from what fired (:func:`schemas.ids.stable_id` over rule, camera,
subject and event time), so reprocessing the same frames raises the same alert, not a new one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict

from schemas.common import CameraId, StableId, StoreKey, UtcDateTime, WireMessage, type_field

AlertType = Literal[
    "zone_intrusion",
    "line_crossing",
    "loitering",
    "crowding",
    "camera_offline",
    "plate_hotlist",
    "device_alarm",
    "quality_fault",
    "recording_gap",
]
"""``device_alarm``: a GB/T 28181 device reported an alarm (method, type and priority in ``details``)."""

Severity = Literal["info", "low", "medium", "high", "critical"]

DetailKey = Annotated[str, Strict(), Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
DetailValue = (
    Annotated[str, Strict(), Field(max_length=1000)]
    | Annotated[int, Strict(), Field(ge=-(2**53), le=2**53)]
    | Annotated[float, Strict()]
    | Annotated[bool, Strict()]
    | None
)


class Alert(WireMessage):
    """A rule fired: something an operator should look at."""

    SCHEMA_NAME = "alert"

    type: Literal["alert"] = type_field("alert")
    alert_id: StableId = Field(
        title="Alert ID",
        description="Stable ID derived from rule, camera, subject and event time; the idempotency key.",
    )
    alert_type: AlertType = Field(title="Alert type", description="What kind of rule fired.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    occurred_at: UtcDateTime = Field(
        title="Event time", description="UTC capture time of the frame that triggered it."
    )
    severity: Severity = Field(title="Severity", description="How urgent the alert is for an operator.")
    rule_id: StableId = Field(title="Rule ID", description="ID of the configured rule or hotlist that fired.")
    track_id: StableId | None = Field(
        default=None,
        title="Track ID",
        description="The track that triggered the alert; null for camera-level alerts (camera_offline, crowding, quality_fault, recording_gap).",
    )
    message: Annotated[str, Strict(), Field(min_length=1, max_length=500)] = Field(
        title="Message", description="One human-readable line for the operator."
    )
    evidence_keys: tuple[StoreKey, ...] = Field(
        default=(),
        title="Evidence keys",
        description="Object-store keys of evidence crops, best first.",
        max_length=32,
    )
    details: dict[DetailKey, DetailValue] = Field(
        default_factory=dict,
        title="Details",
        description="Type-specific flat facts (zone, direction, dwell_seconds, count, hotlist, reason, ...).",
        max_length=64,
        json_schema_extra={"additionalProperties": False},
    )

    def idempotency_key(self) -> str:
        """``alert_id``: derived from what fired, so a redelivered frame raises the same alert."""
        return self.alert_id

    @classmethod
    def example(cls) -> Self:
        track = "34020000001320000001:9c41e2d07a5b:17"
        return cls(
            alert_id="0c8d7f4e2a1b5c6d9e0f1a2b3c4d5e6f",
            alert_type="plate_hotlist",
            camera_id="34020000001320000001",
            occurred_at=datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
            severity="high",
            rule_id="hotlist-stolen",
            track_id=track,
            message="Plate 川AF058Y is on hotlist 'stolen'",
            evidence_keys=(f"plates/34020000001320000001/2024-05-01/{track}/1.jpg",),
            details={
                "plate": "川AF058Y",
                "matched": "川AF058Y",
                "edit_distance": 0,
                "reason": "reported stolen",
            },
        )
