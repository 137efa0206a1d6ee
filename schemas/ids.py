"""Builders for the stable IDs that messages carry and that idempotency keys are made of.

Track IDs must be unique across processes and restarts: ``{camera}:{session}:{n}`` where
``session`` is minted once per tracker instance (:func:`new_session_id`) and ``n`` counts
tracks within it. Other IDs that must come out the same when a message is reprocessed
(alerts, objects, plate reads, faces) are derived with :func:`stable_id` from the fields
that identify them, never from the clock or a random number.
"""

from __future__ import annotations

import re
import uuid

from schemas.common import CAMERA_ID_PATTERN, ID_PATTERN, SESSION_PATTERN

TUBELINE_NAMESPACE = uuid.UUID("6f1d0c52-9a4e-5b7a-8c1e-2b6d3f0a9e41")
"""The UUID5 namespace of every ID :func:`stable_id` derives."""

_CAMERA = re.compile(CAMERA_ID_PATTERN)
_ID = re.compile(ID_PATTERN)
_SESSION = re.compile(SESSION_PATTERN)


def is_camera_id(value: str) -> bool:
    """True when ``value`` is a valid camera ID (GB/T 28181 20-digit ID or a free ID)."""
    return bool(_CAMERA.fullmatch(value))


def new_session_id() -> str:
    """A fresh 12-hex-digit session ID for an ingest or tracker instance (random, once per start)."""
    return uuid.uuid4().hex[:12]


def make_track_id(camera_id: str, session: str, number: int) -> str:
    """The track ID ``{camera}:{session}:{n}``, unique across processes and restarts."""
    if not _CAMERA.fullmatch(camera_id):
        msg = f"not a camera ID: {camera_id!r}"
        raise ValueError(msg)
    if not _SESSION.fullmatch(session):
        msg = f"not a session ID: {session!r}"
        raise ValueError(msg)
    if number < 0:
        msg = f"track number must be >= 0, got {number}"
        raise ValueError(msg)
    track_id = f"{camera_id}:{session}:{number}"
    if not _ID.fullmatch(track_id):
        msg = f"track ID too long: {track_id!r}"
        raise ValueError(msg)
    return track_id


def stable_id(*parts: object) -> str:
    """A deterministic 32-hex-digit ID (UUID5) from the given parts, joined with ``/``.

    ``stable_id("rule-7", "cam-01", track_id, "2024-05-01T08:00:00Z")`` is the same on
    every worker and every retry, so a reprocessed event overwrites instead of duplicating.
    """
    if not parts:
        msg = "stable_id needs at least one part"
        raise ValueError(msg)
    return uuid.uuid5(TUBELINE_NAMESPACE, "/".join(str(part) for part in parts)).hex
