"""Tubeline's wire contract: frozen, versioned message classes and their JSON Schemas.

Every message that crosses a process boundary is one of the classes re-exported here
(pydantic v2, frozen, ``extra="forbid"``), with ``to_json()``/``from_json()`` and an
``idempotency_key()``. ``schemas/json/<name>.v1.json`` holds the committed JSON Schema of
each (regenerate with ``python -m schemas.generate``), :mod:`schemas.topics` names every
topic, and :mod:`schemas.validation` checks raw JSON against the committed files.

This package imports only pydantic, jsonschema and the standard library, so every other
package (and any consumer outside the project) can depend on it.
"""

from __future__ import annotations

from schemas.alerts import Alert
from schemas.cameras import CameraHealth, CameraStats, CameraStatus, HealthScores
from schemas.common import SCHEMA_VERSION, WireMessage, WireModel, format_utc
from schemas.detections import DetectedObject, Detections
from schemas.devices import DeviceCommand
from schemas.faces import FaceEmbedding, FaceQuality, FaceRecord
from schemas.frames import FrameHeader
from schemas.ids import is_camera_id, make_track_id, new_session_id, stable_id
from schemas.objects import ObjectCrop
from schemas.plates import PlateRead
from schemas.registry import MESSAGE_TYPES, message_class, parse_message
from schemas.tracks import TrackSummary

__all__ = [
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "Alert",
    "CameraHealth",
    "CameraStats",
    "CameraStatus",
    "DetectedObject",
    "Detections",
    "DeviceCommand",
    "FaceEmbedding",
    "FaceQuality",
    "FaceRecord",
    "FrameHeader",
    "HealthScores",
    "ObjectCrop",
    "PlateRead",
    "TrackSummary",
    "WireMessage",
    "WireModel",
    "format_utc",
    "is_camera_id",
    "make_track_id",
    "message_class",
    "new_session_id",
    "parse_message",
    "stable_id",
]
