"""Field types and base classes shared by every Tubeline wire message.

Everything that crosses a process boundary is one of the frozen pydantic classes in this
package. This module holds what they have in common:

- :class:`WireModel`, the strict, frozen, ``extra="forbid"`` base of every nested object;
- :class:`WireMessage`, the base of every top-level message, with the ``type`` and
  ``schema_version`` discriminator, ``to_json()``/``from_json()`` and ``idempotency_key()``;
- reusable annotated field types: camera and object IDs, object-store keys, UTC
  timestamps, scores, pixel boxes.

Conventions (the contract every message follows):

- **Timestamps** are timezone-aware. Any offset is accepted on input and converted to
  UTC; on the wire they are always RFC 3339 in UTC with a ``Z`` suffix
  (``2024-05-01T08:00:00.250000Z``). Naive datetimes are rejected.
- **Camera IDs** are strings matching ``^[A-Za-z0-9_.:-]{1,64}$``: 20-digit GB/T 28181
  device/channel IDs and free IDs such as ``cam-01`` alike. The camera ID is the Kafka key.
- **Boxes** are ``[x1, y1, x2, y2]`` in pixels of the full frame, ``x1 <= x2``,
  ``y1 <= y2``.
- **Scores and confidences** are in ``[0, 1]``. NaN and infinities are rejected.
- Numbers, booleans and strings are strict: ``"5"`` is not an integer, ``1`` is not ``true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)

SCHEMA_VERSION = 1
"""The version of every message class in this package (``.v1`` topics, ``*.v1.json`` files)."""

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

CAMERA_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
"""Camera IDs: GB/T 28181 20-digit IDs (``34020000001320000001``) or free IDs (``cam-01``)."""

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
"""Track, object, read, face, alert and rule IDs. No ``/``: IDs are joined with ``/`` into keys."""

SESSION_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""An ingest or tracker session ID (for example 12 hex digits of a UUID4)."""

STORE_KEY_PATTERN = r"^[A-Za-z0-9_.:=+-][A-Za-z0-9_.:=+/-]{0,1023}$"
"""Object-store keys (``crops/cam-01/2024-05-01/cam-01:3f2a:17/0.jpg``): relative, at most 1024 chars."""

MODEL_ID_PATTERN = r"^[A-Za-z0-9_.:@+-][A-Za-z0-9_.:@+/-]{0,127}$"
"""The model-registry ID of the model that produced a result (``yolov8n-coco@1``)."""

CLASS_NAME_PATTERN = r"^[a-z0-9][a-z0-9_ -]{0,63}$"
"""Detector class names, lower case (``person``, ``car``, ``traffic light``)."""

MAX_FRAME_SIDE = 16384
"""The largest frame width or height any message accepts, in pixels."""

_UTC_WIRE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|\+00:00)$"


def to_utc(value: datetime) -> datetime:
    """Converts an aware datetime to UTC (naive ones never get here: ``AwareDatetime`` rejects them)."""
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """The wire form of a timestamp: RFC 3339, UTC, ``Z`` suffix, microseconds when non-zero."""
    if value.tzinfo is None:
        msg = "format_utc needs a timezone-aware datetime"
        raise ValueError(msg)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    AwareDatetime,
    Strict(),
    AfterValidator(to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": _UTC_WIRE_PATTERN}),
]
"""A timezone-aware datetime, normalised to UTC, serialised as RFC 3339 with ``Z``."""

CameraId = Annotated[str, Strict(), Field(pattern=CAMERA_ID_PATTERN)]
StableId = Annotated[str, Strict(), Field(pattern=ID_PATTERN)]
SessionId = Annotated[str, Strict(), Field(pattern=SESSION_PATTERN)]
StoreKey = Annotated[str, Strict(), Field(pattern=STORE_KEY_PATTERN)]
ModelId = Annotated[str, Strict(), Field(pattern=MODEL_ID_PATTERN)]
ClassName = Annotated[str, Strict(), Field(pattern=CLASS_NAME_PATTERN)]

Score = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]
"""A probability-like value in ``[0, 1]``."""

Count = Annotated[int, Strict(), Field(ge=0, le=2**53)]
"""A non-negative counter that JSON consumers can hold exactly."""

Sequence64 = Annotated[int, Strict(), Field(ge=0, le=2**53)]
"""A per-camera, per-session frame sequence number."""

ClassId = Annotated[int, Strict(), Field(ge=0, le=65535)]
FrameSide = Annotated[int, Strict(), Field(ge=1, le=MAX_FRAME_SIDE)]
Pixel = Annotated[float, Strict(), Field(ge=0.0, le=float(MAX_FRAME_SIDE))]
"""A coordinate in pixels of the full frame, origin top-left."""


def _check_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        msg = f"box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, got {list(box)}"
        raise ValueError(msg)
    return box


Box = Annotated[tuple[Pixel, Pixel, Pixel, Pixel], AfterValidator(_check_box)]
"""``[x1, y1, x2, y2]`` in pixels of the full frame, ``x1 <= x2`` and ``y1 <= y2``."""


def check_box_in_frame(box: Sequence[float], width: int, height: int, what: str) -> None:
    """Raises ``ValueError`` when ``box`` reaches outside a ``width`` x ``height`` frame.

    Producers clip boxes to the frame before they publish them.
    """
    x1, y1, x2, y2 = box[0], box[1], box[2], box[3]
    if x2 > width or y2 > height:
        msg = f"{what} {[x1, y1, x2, y2]} reaches outside the {width}x{height} frame"
        raise ValueError(msg)


class WireModel(BaseModel):
    """Base of every nested wire object: frozen, strict about unknown fields, no NaN/inf."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        validate_default=True,
        json_schema_serialization_defaults_required=True,
    )


def type_field(name: str) -> Any:
    """The ``type`` discriminator field of a message whose type is ``name``."""
    return Field(
        default=name,
        title="Message type",
        description=f"Discriminator: always {name!r} for this message class.",
    )


class WireMessage(WireModel):
    """Base of every top-level message on the bus.

    Subclasses set ``SCHEMA_NAME`` (the JSON Schema file is ``schemas/json/<name>.v1.json``),
    override ``type`` with :func:`type_field` and implement :meth:`idempotency_key`.
    """

    SCHEMA_NAME: ClassVar[str] = ""

    type: str = Field(title="Message type", description="Discriminator naming the message class.")
    schema_version: Annotated[int, Strict(), Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)] = Field(
        default=SCHEMA_VERSION,
        title="Schema version",
        description="Version of this message's schema; a consumer rejects versions it does not know.",
    )

    def to_json(self) -> bytes:
        """The message as compact UTF-8 JSON; ``from_json`` gives back an equal message."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | bytearray | str) -> Self:
        """Parses and validates a message; raises ``pydantic.ValidationError`` (a ``ValueError``)."""
        return cls.model_validate_json(data)

    def idempotency_key(self) -> str:
        """A key derived only from stable fields, so a redelivered or retried message maps to
        the same key and sinks overwrite instead of duplicating."""
        raise NotImplementedError

    @classmethod
    def schema_file_name(cls) -> str:
        """The committed JSON Schema's file name, for example ``detections.v1.json``."""
        return f"{cls.SCHEMA_NAME}.v{SCHEMA_VERSION}.json"

    @classmethod
    def example(cls) -> Self:
        """A realistic, valid instance: documentation in the schema file and a test fixture."""
        raise NotImplementedError

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of the message as it appears on the wire."""
        schema = cls.model_json_schema(mode="serialization")
        document: dict[str, Any] = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:tubeline:schema:{cls.SCHEMA_NAME}:v{SCHEMA_VERSION}",
        }
        document.update(schema)
        document["examples"] = [cls.example().model_dump(mode="json")]
        return document
