"""The shape of every ID a request can carry, as patterns the OpenAPI document shows and FastAPI enforces.

An ID that does not match is refused with 422 before any handler runs, so no malformed camera ID reaches an
object-store key (``camera=..`` used to end in a 500 from the key check) and no arbitrary text reaches a query.
The case-reference pattern is configuration (``api.case_pattern``): the application puts it into the OpenAPI
document when it builds it, and checks it in the handlers (400 with the pattern).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BeforeValidator, StringConstraints, WithJsonSchema

from schemas.common import ID_PATTERN
from schemas.plates import PLATE_SEPARATORS
from workers.api.users import USER_NAME_PATTERN

CAMERA_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""A camera ID as the registry and the configuration accept it (letters or digits first: never ``.``/``..``),
colons allowed as in the wire schemas' IDs."""
SYNOPSIS_ID = r"^[0-9a-f]{32}$"
EXPORT_ID = r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{12}$"
SIGHTING_ID = ID_PATTERN[:-1] + r"(/[0-9]{1,9})?$"
"""A plate read ID, a face ID, or a vehicle sighting ``{track_id}/{segment}``."""
MEDIA_TOKEN = r"^[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{27}$"
IMAGE_SHA256 = r"^[0-9a-f]{64}$"
AUDIT_ACTION = r"^[a-z][a-z_.]{0,63}$"
_TYPED = r"0-9A-Za-z\u4e00-\u9fff\uff01-\uff5e \u3000" + "".join(
    "\\" + c if c in "\\]^-[" else c for c in sorted(PLATE_SEPARATORS))
"""What a plate may be typed with: letters, digits, CJK and full-width forms, spaces and the separators
:func:`schemas.plates.normalise_plate` drops (``AA-628-PD``, ``川A·F058Y``)."""
PLATE_QUERY = rf"^[{_TYPED}*?]{{1,32}}$"
"""Plate text as typed, with the wildcards ``*`` and ``?``; normalised, it must match :data:`PLATE_QUERY_NORMALISED`."""
PLATE = rf"^[{_TYPED}]{{1,32}}$"
"""One plate as typed; normalised, it must be plate text (:func:`schemas.plates.is_plate_text`)."""
PLATE_QUERY_NORMALISED = r"^[0-9A-Z\u4e00-\u9fff*?]{1,16}$"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$")


def _instant(value: Any) -> Any:
    """An RFC 3339 time with its offset, as text: ``2026-05-01T08:00:00Z`` or ``…+08:00`` (not a number, not a
    local time — both were silently accepted before)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        msg = "a time is an RFC 3339 string, e.g. 2026-05-01T08:00:00Z"
        raise ValueError(msg)  # noqa: TRY004 - pydantic wants ValueError
    if _NAIVE.fullmatch(value):
        msg = "needs a time zone, e.g. 2026-05-01T08:00:00Z or 2026-05-01T16:00:00+08:00"
        raise ValueError(msg)
    if not _RFC3339.fullmatch(value):
        msg = "not an RFC 3339 time (e.g. 2026-05-01T08:00:00Z)"
        raise ValueError(msg)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


Instant = Annotated[datetime, BeforeValidator(_instant), WithJsonSchema({"type": "string", "format": "date-time"})]
"""A point in time as every request gives it: RFC 3339 with an offset."""

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: Any) -> Any:
    """A calendar day as ``YYYY-MM-DD`` text (pydantic alone also takes ``0`` as 1970-01-01)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        msg = "a day is written YYYY-MM-DD, e.g. 2026-05-01"
        raise ValueError(msg)
    return date.fromisoformat(value)


Day = Annotated[date, BeforeValidator(_day), WithJsonSchema({"type": "string", "format": "date"})]
"""A calendar day (UTC) as every request gives it: ``YYYY-MM-DD``."""

CameraPath = Annotated[str, Path(pattern=CAMERA_ID, description="A camera ID.")]
SynopsisPath = Annotated[str, Path(pattern=SYNOPSIS_ID, description="A synopsis ID (32 hex digits).")]
ExportPath = Annotated[str, Path(pattern=EXPORT_ID, description="An export ID (e.g. 20260501T080000-0123456789ab).")]
MediaTokenPath = Annotated[str, Path(pattern=MEDIA_TOKEN, description="A signed media link's token.")]
CameraQuery = Annotated[str, Query(pattern=CAMERA_ID, description="A camera ID.")]
CameraId = Annotated[str, StringConstraints(pattern=CAMERA_ID)]
"""A camera ID in a body or a form (pydantic constraint; the same pattern)."""
CameraFilter = Annotated[list[CameraId] | None,
                       Query(description="Narrow to these camera IDs (repeat the parameter).", max_length=1000)]
UserNameQuery = Annotated[str | None, Query(pattern=USER_NAME_PATTERN, description="A user name.")]
AuditActionQuery = Annotated[str | None, Query(pattern=AUDIT_ACTION,
                                               description="An action or its family ('search').")]
