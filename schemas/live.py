"""Live packet headers: the metadata of one encoded video packet on ``tubeline.live.v1``.

A packet travels as its encoded bytes (the Kafka value: the camera's own stream, never re-encoded) with its
metadata in Kafka headers named like the frame headers (``tubeline-<field>``, ``_`` → ``-``, UTF-8 text):
camera, ingest source session (a new one whenever the stream's parameters may change), codec, size, nominal
rate, presentation and decoding time in seconds on the source clock, keyframe flag, capture time (UTC), and
on keyframes the codec's extradata (base64; empty when the parameter sets travel in the stream). Viewers
need a keyframe and, for MP4 and Matroska sources, the extradata to start; everything else is optional for
them. The committed ``live_packet.v1.json`` describes the same fields as the JSON object of
:meth:`LivePacketHeader.to_json`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import Field, Strict

from schemas.common import CameraId, FrameSide, SessionId, UtcDateTime, WireMessage, type_field
from schemas.frames import header_name

_FLOAT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_INT_FIELDS = frozenset({"schema_version", "width", "height"})
_FLOAT_FIELDS = frozenset({"pts", "dts", "fps"})
MAX_EXTRADATA = 4096


class LivePacketHeader(WireMessage):
    """Metadata of one encoded packet published by ingest for live viewing; the packet is the Kafka value."""

    SCHEMA_NAME = "live_packet"

    type: Literal["live_packet"] = type_field("live_packet")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    session: SessionId = Field(
        title="Stream session",
        description="Ingest session and source (re)open count; the stream's parameters hold within a session.",
    )
    codec: Annotated[str, Strict(), Field(pattern=r"^[a-z0-9_]{1,32}$")] = Field(
        title="Codec", description="FFmpeg name of the stream's codec (h264, hevc, msmpeg4v3, ...).")
    width: FrameSide = Field(title="Width", description="Picture width in pixels.")
    height: FrameSide = Field(title="Height", description="Picture height in pixels.")
    fps: Annotated[float, Strict(), Field(ge=0, le=1000)] = Field(
        title="Nominal rate", description="Frames per second the source announces (0 when unknown).")
    pts: Annotated[float, Strict(), Field(ge=-1e7, le=1e10)] = Field(
        title="Presentation time", description="Seconds on the source stream's clock.")
    dts: Annotated[float, Strict(), Field(ge=-1e7, le=1e10)] = Field(
        title="Decoding time", description="Seconds on the source stream's clock.")
    keyframe: Annotated[bool, Strict()] = Field(title="Keyframe", description="The packet starts a decodable picture.")
    captured_at: UtcDateTime = Field(title="Capture time", description="UTC capture time of the packet's picture.")
    extradata: Annotated[str, Strict(), Field(max_length=MAX_EXTRADATA * 2, pattern=r"^[A-Za-z0-9+/=]*$")] = Field(
        default="", title="Extradata", description="Base64 of the codec's extradata (on keyframes; else empty).")

    def idempotency_key(self) -> str:
        return f"{self.camera_id}/{self.session}/{self.dts!r}"

    def extradata_bytes(self) -> bytes:
        return base64.b64decode(self.extradata) if self.extradata else b""

    def to_headers(self) -> list[tuple[str, bytes]]:
        out = []
        for field, value in self.model_dump(mode="json").items():
            text = ("true" if value else "false") if isinstance(value, bool) else repr(value) \
                if isinstance(value, float) else str(value)
            out.append((header_name(field), text.encode("utf-8")))
        return out

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | bytearray | str | None]]) -> Self:
        """Parse the headers of a live packet (other headers are ignored); ValueError when malformed."""
        names = {header_name(field): field for field in cls.model_fields}
        raw: dict[str, str] = {}
        for name, value in headers:
            field = names.get(name)
            if field is None or value is None:
                continue
            if field in raw:
                msg = f"live header {name} appears more than once"
                raise ValueError(msg)
            raw[field] = value if isinstance(value, str) else bytes(value).decode("utf-8")
        doc: dict[str, Any] = {}
        for field, text in raw.items():
            if field in _INT_FIELDS:
                doc[field] = int(text) if text.lstrip("-").isdigit() and len(text) < 12 else text
            elif field in _FLOAT_FIELDS:
                if not _FLOAT_TEXT.fullmatch(text):
                    msg = f"live header {header_name(field)} must be a number, got {text[:40]!r}"
                    raise ValueError(msg)
                doc[field] = float(text)
            elif field == "keyframe":
                doc[field] = text == "true" if text in ("true", "false") else text
            else:
                doc[field] = text
        return cls.model_validate_json(json.dumps(doc))

    @classmethod
    def example(cls) -> Self:
        return cls(camera_id="34020000001320000001", session="5f0c2a9e41b7-1", codec="h264", width=1920, height=1080,
                   fps=25.0, pts=48.04, dts=48.0, keyframe=True,
                   captured_at=datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
                   extradata=base64.b64encode(b"\x00\x00\x00\x01\x67\x64\x00\x28").decode())
