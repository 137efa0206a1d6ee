"""Plate reads: one licence plate per vehicle track, on ``tubeline.plates.v1``.

The plate worker votes across a track's crops (character level, confidence weighted) and
publishes the track's plate; when a better read arrives it publishes again with a higher
``revision`` under the same idempotency key ``{track_id}/plate``, so sinks keep one read
per vehicle and the latest revision wins.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

from schemas.common import (
    Box,
    CameraId,
    Count,
    ModelId,
    Score,
    StableId,
    StoreKey,
    UtcDateTime,
    WireMessage,
    type_field,
)

PLATE_TEXT_PATTERN = r"^[0-9A-Z\u4e00-\u9fff]{1,16}$"
"""Normalised plate text: upper-case Latin letters, digits and CJK characters, no separators."""

PLATE_SEPARATORS = frozenset("·•.-_/:：—–・‧,，、。")
"""What people and OCR put between plate characters; dropped by :func:`normalise_plate`, with all whitespace."""

_PLATE_TEXT = re.compile(PLATE_TEXT_PATTERN)


def normalise_plate(text: str) -> str:
    """Plate text as it is stored, listed and searched: full-width forms folded to ASCII, Latin letters in
    upper case, whitespace and :data:`PLATE_SEPARATORS` dropped (``川a·f058-y`` → ``川AF058Y``,
    ``aa-628-pd`` → ``AA628PD``). Every other character is kept: the wildcards ``*`` and ``?`` for a
    wildcard search, and whatever makes the text no plate, for the caller to refuse (:func:`plate_text`)."""
    out = []
    for ch in text:
        if "\uff01" <= ch <= "\uff5e":
            ch = chr(ord(ch) - 0xFEE0)
        if ch.isspace() or ch in PLATE_SEPARATORS:
            continue
        out.append(ch.upper() if ch.isascii() else ch)
    return "".join(out)


def is_plate_text(text: str) -> bool:
    """True for normalised plate text (:data:`PLATE_TEXT_PATTERN`)."""
    return _PLATE_TEXT.fullmatch(text) is not None


def plate_text(raw: str) -> str:
    """The normalised plate of ``raw``; ValueError when that is not plate text."""
    plate = normalise_plate(raw)
    if not is_plate_text(plate):
        msg = f"{raw!r} is not plate text (letters, digits and CJK characters, 1-16 after normalising)"
        raise ValueError(msg)
    return plate


PlateRegion = Literal["cn", "latin"]
"""``cn``: mainland Chinese plates (province character first); ``latin``: Latin-alphabet plates."""

PlateKind = Literal["blue", "yellow", "green", "white", "black", "other"]
"""The plate's background colour, which on ``cn`` plates is its kind: blue = small vehicle,
yellow = large vehicle, green = new-energy vehicle, white = police/military/government,
black = foreign or Hong Kong/Macau vehicle; ``other`` for anything else."""


class PlateRead(WireMessage):
    """The voted plate of one vehicle track."""

    SCHEMA_NAME = "plate_read"

    type: Literal["plate_read"] = type_field("plate_read")
    read_id: StableId = Field(
        title="Read ID",
        description="Stable ID of this read, derived from the track and revision ({track_id}.plate.{revision}).",
    )
    track_id: StableId = Field(title="Track ID", description="The vehicle track the plate belongs to.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    captured_at: UtcDateTime = Field(
        title="Capture time", description="UTC capture time of the frame of the best plate crop."
    )
    text: Annotated[str, Strict(), Field(pattern=PLATE_TEXT_PATTERN)] = Field(
        title="Plate text",
        description="Normalised plate text, e.g. 川AF058Y; upper case, no spaces or separators.",
    )
    char_confidences: tuple[Score, ...] = Field(
        title="Per-character confidence",
        description="Confidence of each character of text, same length as text.",
        min_length=1,
        max_length=16,
    )
    confidence: Score = Field(title="Confidence", description="Overall confidence of the read.")
    plate_box: Box = Field(
        title="Plate box", description="[x1, y1, x2, y2] of the plate in pixels of the source frame."
    )
    crop_key: StoreKey = Field(title="Crop key", description="Object-store key of the plate crop (evidence).")
    region: PlateRegion = Field(title="Region", description="Plate family: cn or latin.")
    plate_kind: PlateKind = Field(title="Plate kind", description="Background colour / kind of the plate.")
    model_id: ModelId = Field(title="Reader model", description="Model-registry ID of the plate reader.")
    votes: Annotated[int, Strict(), Field(ge=1, le=100000)] = Field(
        title="Votes", description="Number of crop reads combined into this read."
    )
    revision: Count = Field(
        default=0,
        title="Revision",
        description="0 for the track's first read, +1 for each improved read; the highest wins.",
    )

    @model_validator(mode="after")
    def _one_confidence_per_character(self) -> Self:
        if len(self.char_confidences) != len(self.text):
            msg = (
                f"char_confidences has {len(self.char_confidences)} entries but text "
                f"{self.text!r} has {len(self.text)} characters"
            )
            raise ValueError(msg)
        return self

    def idempotency_key(self) -> str:
        """``{track_id}/plate``: one plate per vehicle track; a later revision overwrites."""
        return f"{self.track_id}/plate"

    @classmethod
    def example(cls) -> Self:
        track = "34020000001320000001:9c41e2d07a5b:17"
        return cls(
            read_id=f"{track}.plate.1",
            track_id=track,
            camera_id="34020000001320000001",
            captured_at=datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
            text="川AF058Y",
            char_confidences=(0.97, 0.99, 0.95, 0.98, 0.93, 0.96, 0.9),
            confidence=0.9,
            plate_box=(500.0, 430.0, 590.0, 458.0),
            crop_key=f"plates/34020000001320000001/2024-05-01/{track}/1.jpg",
            region="cn",
            plate_kind="blue",
            model_id="plate-reader-cn@1",
            votes=4,
            revision=1,
        )
