"""Frame headers: the metadata of a frame on ``tubeline.frames.v1``.

A frame travels as its JPEG bytes (the Kafka value) with its metadata in Kafka headers,
one header per field, named ``tubeline-<field>`` with ``_`` replaced by ``-``
(``tubeline-captured-at``), each value UTF-8 text:

- ``tubeline-type``: ``frame_header``
- ``tubeline-schema-version``: ``1``
- ``tubeline-camera-id``: the camera ID (also the Kafka key)
- ``tubeline-session``: the ingest session ID; ``sequence`` restarts with each session
- ``tubeline-sequence``: decimal integer
- ``tubeline-captured-at``: RFC 3339 in UTC with ``Z``
- ``tubeline-pts``: decimal float, seconds on the source clock (Python ``repr``)
- ``tubeline-width`` / ``tubeline-height``: decimal integers, pixels of the JPEG
- ``tubeline-source-codec``: FFmpeg codec name of the source stream (``h264``, ``hevc``)
- ``tubeline-keyframe``: ``true`` or ``false`` (the source picture was a keyframe)
- ``tubeline-content-type``: ``image/jpeg``

The committed ``frame_header.v1.json`` describes the same fields as the JSON object that
:meth:`FrameHeader.to_json` gives (for logs and the dead-letter topic); the headers are the
wire form on the frames topic. Other headers (tracing, ``tubeline-dlq-*``) are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import Field, Strict

from schemas.common import (
    CameraId,
    FrameSide,
    Sequence64,
    SessionId,
    UtcDateTime,
    WireMessage,
    type_field,
)

HEADER_PREFIX = "tubeline-"
_INT_FIELDS = frozenset({"schema_version", "sequence", "width", "height"})
_FLOAT_FIELDS = frozenset({"pts"})
_BOOL_FIELDS = frozenset({"keyframe"})
_INT_TEXT = re.compile(r"-?[0-9]{1,20}")
_FLOAT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def header_name(field: str) -> str:
    """The Kafka header that carries ``field``: ``captured_at`` -> ``tubeline-captured-at``."""
    return HEADER_PREFIX + field.replace("_", "-")


class FrameHeader(WireMessage):
    """Metadata of one JPEG frame published by ingest; the frame itself is the Kafka value."""

    SCHEMA_NAME = "frame_header"

    type: Literal["frame_header"] = type_field("frame_header")
    camera_id: CameraId = Field(
        title="Camera ID",
        description="The camera that produced the frame; also the Kafka key.",
    )
    session: SessionId = Field(
        title="Ingest session",
        description="ID of the ingest session that published the frame; sequence numbers restart with each session.",
    )
    sequence: Sequence64 = Field(
        title="Sequence",
        description="Frames published for this camera in this session before this one (0, 1, 2, ...).",
    )
    captured_at: UtcDateTime = Field(
        title="Capture time",
        description="UTC wall-clock time the frame was captured (simulated for files).",
    )
    pts: Annotated[float, Strict(), Field(ge=-1e7, le=1e10)] = Field(
        title="Presentation time",
        description="Presentation timestamp in seconds on the source stream's own clock.",
    )
    width: FrameSide = Field(title="Width", description="Width of the JPEG in pixels.")
    height: FrameSide = Field(title="Height", description="Height of the JPEG in pixels.")
    source_codec: Annotated[str, Strict(), Field(pattern=r"^[a-z0-9_]{1,32}$")] = Field(
        title="Source codec",
        description="FFmpeg name of the codec the camera stream used (h264, hevc, mjpeg, ...).",
    )
    keyframe: Annotated[bool, Strict()] = Field(
        title="Keyframe",
        description="True when the decoded source picture was a keyframe (IDR/I-frame).",
    )
    content_type: Literal["image/jpeg"] = Field(
        default="image/jpeg",
        title="Content type",
        description="Encoding of the Kafka value: always a baseline JPEG.",
    )

    def idempotency_key(self) -> str:
        """``{camera_id}/{session}/{sequence}``: one key per published frame."""
        return f"{self.camera_id}/{self.session}/{self.sequence}"

    def to_headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers for this frame, one per field, in field order."""
        headers: list[tuple[str, bytes]] = []
        for field, value in self.model_dump(mode="json").items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            headers.append((header_name(field), text.encode("utf-8")))
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | bytearray | str | None]]) -> Self:
        """Parses the headers of a frame message; ignores headers that are not frame fields.

        Raises ``ValueError`` for a missing, repeated or malformed header
        (``pydantic.ValidationError``, also a ``ValueError``, for an invalid field value).
        """
        names = {header_name(field): field for field in cls.model_fields}
        raw: dict[str, str] = {}
        for name, value in headers:
            field = names.get(name)
            if field is None:
                continue
            if field in raw:
                msg = f"frame header {name} appears more than once"
                raise ValueError(msg)
            raw[field] = _header_text(name, value)
        missing = [header_name(field) for field in cls.model_fields if field not in raw]
        if missing:
            msg = f"frame headers missing: {', '.join(missing)}"
            raise ValueError(msg)
        document = {field: _parse_header_value(field, text) for field, text in raw.items()}
        return cls.model_validate_json(json.dumps(document))

    @classmethod
    def example(cls) -> Self:
        return cls(
            camera_id="34020000001320000001",
            session="5f0c2a9e41b7",
            sequence=1200,
            captured_at=datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
            pts=48.04,
            width=1280,
            height=720,
            source_codec="h264",
            keyframe=False,
        )


def _header_text(name: str, value: bytes | bytearray | str | None) -> str:
    if value is None:
        msg = f"frame header {name} has no value"
        raise ValueError(msg)
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"frame header {name} is not UTF-8"
        raise ValueError(msg) from exc


def _parse_header_value(field: str, text: str) -> Any:
    if field in _INT_FIELDS:
        if not _INT_TEXT.fullmatch(text):
            msg = f"frame header {header_name(field)} must be an integer, got {text!r}"
            raise ValueError(msg)
        return int(text)
    if field in _FLOAT_FIELDS:
        if not _FLOAT_TEXT.fullmatch(text):
            msg = f"frame header {header_name(field)} must be a finite number, got {text!r}"
            raise ValueError(msg)
        return float(text)
    if field in _BOOL_FIELDS:
        if text not in ("true", "false"):
            msg = f"frame header {header_name(field)} must be 'true' or 'false', got {text!r}"
            raise ValueError(msg)
        return text == "true"
    return text
