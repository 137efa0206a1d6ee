"""The list of every wire message class, and lookup by its ``type`` discriminator.

``python -m schemas.generate`` writes one JSON Schema per class listed here; a new
message class is not part of the contract until it is added to :data:`MESSAGE_TYPES`.
"""

from __future__ import annotations

import json

from schemas.alerts import Alert
from schemas.cameras import CameraHealth, CameraStatus
from schemas.common import WireMessage
from schemas.detections import Detections
from schemas.devices import DeviceCommand
from schemas.faces import FaceRecord
from schemas.frames import FrameHeader
from schemas.live import LivePacketHeader
from schemas.objects import ObjectCrop
from schemas.plates import PlateRead
from schemas.tracks import TrackSummary

MESSAGE_TYPES: tuple[type[WireMessage], ...] = (
    FrameHeader,
    Detections,
    ObjectCrop,
    TrackSummary,
    PlateRead,
    FaceRecord,
    Alert,
    CameraStatus,
    CameraHealth,
    DeviceCommand,
    LivePacketHeader,
)


def type_name(cls: type[WireMessage]) -> str:
    """The ``type`` discriminator value of a message class (``Detections`` -> ``detections``)."""
    default = cls.model_fields["type"].default
    if not isinstance(default, str):
        msg = f"{cls.__name__} has no fixed type discriminator"
        raise TypeError(msg)
    return default


def message_class(name: str) -> type[WireMessage]:
    """The class whose ``type`` discriminator is ``name``; ``KeyError`` if there is none."""
    for cls in MESSAGE_TYPES:
        if type_name(cls) == name:
            return cls
    msg = f"no message type {name!r}"
    raise KeyError(msg)


def parse_message(data: bytes | bytearray | str) -> WireMessage:
    """Parses a JSON message of any type, choosing the class by its ``type`` field.

    Raises ``ValueError`` for malformed JSON or an unknown type and
    ``pydantic.ValidationError`` (a ``ValueError``) for an invalid message.
    """
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        msg = f"not JSON: {exc}"
        raise ValueError(msg) from exc
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        msg = "a message must be a JSON object with a string 'type' field"
        raise ValueError(msg)
    try:
        cls = message_class(document["type"])
    except KeyError as exc:
        msg = f"unknown message type {document['type']!r}"
        raise ValueError(msg) from exc
    return cls.model_validate_json(data)
