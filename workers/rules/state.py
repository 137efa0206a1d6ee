"""The rules worker's per-camera engine state in the object store, so a restart continues where it was.

``state/rules/{camera}/{topic}.json`` (``rules.state_prefix``) holds one camera's
:class:`workers.rules.engine.CameraState`
— live tracks with their zone stays, line sides and fired rules, crowding and offline timers, cool-downs,
and the last frame and status event it took in — as versioned JSON (data only; nothing in it is code).
The worker writes it after the alerts of the messages it covers were flushed and before their offsets are
committed; a worker that meets a camera it holds no state for (restart, rebalance) loads it first. The
engine skips messages at or before the state's last frame or status event (their alerts went out before the
state was written) and continues the rest from the same state, so a killed rules worker raises exactly the
alerts, with the same IDs, that an uninterrupted one would have. The state is read like untrusted input
(:mod:`pipeline.documents`: at most :data:`MAX_STATE_BYTES`, a JSON object of this version, every field
validated strictly, times with a zone); one that is not is refused — logged, counted in
:attr:`RulesStateStore.refused` — and the camera starts empty, as it did before states were kept.

One file per input topic: the partitions of the detections and the status topics are assigned
independently, so two workers may each hold part of a camera (its tracks, its offline timer); each saves
and loads only the file of the topic it consumes the camera from, so they never overwrite each other.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectNotFound, ObjectStore, join_key
from workers.rules.engine import CameraState, CrowdState, TrackState

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_STATE_BYTES = 16 * 1024 * 1024
"""At most ``rules.max_tracks_per_camera`` (5000) tracks of a few hundred bytes each, plus timers."""

Point = tuple[float, float]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Track(_Doc):
    last_seen: AwareDatetime
    point: Point
    entered: dict[str, AwareDatetime]
    fired: list[str]
    sides: dict[str, tuple[int, Point]]


class _Crowd(_Doc):
    since: AwareDatetime | None
    fired: bool


class _State(_Doc):
    version: int
    camera_id: str
    last_frame: tuple[AwareDatetime, str, int] | None
    last_status_at: AwareDatetime | None
    tracks: list[tuple[str, _Track]]
    crowds: dict[str, _Crowd]
    offline_since: AwareDatetime | None
    offline_reason: str | None
    offline_fired: list[str]
    cooldowns: list[tuple[str, str, AwareDatetime]]


_STATE = TypeAdapter(_State)


def _t(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def state_to_json(camera_id: str, state: CameraState) -> bytes:
    tracks = [
        [track_id, {
            "last_seen": _t(t.last_seen), "point": list(t.point),
            "entered": {zone: _t(at) for zone, at in t.entered.items()}, "fired": sorted(t.fired),
            "sides": {line: [side, list(point)] for line, (side, point) in t.sides.items()},
        }]
        for track_id, t in state.tracks.items()
    ]
    doc = {
        "version": STATE_VERSION, "camera_id": camera_id,
        "last_frame": [_t(state.last_frame[0]), state.last_frame[1], state.last_frame[2]] if state.last_frame else None,
        "last_status_at": _t(state.last_status_at), "tracks": tracks,
        "crowds": {rule: {"since": _t(c.since), "fired": c.fired} for rule, c in state.crowds.items()},
        "offline_since": _t(state.offline_since), "offline_reason": state.offline_reason,
        "offline_fired": sorted(state.offline_fired),
        "cooldowns": [[rule, subject, _t(at)] for (rule, subject), at in state.cooldowns.items()],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def state_from_json(data: bytes, camera_id: str) -> CameraState:
    """The engine state in ``data``; DocumentRefused (a ValueError, with the reason) when it is not a valid
    version-1 state of ``camera_id`` (bounded, strictly validated: :mod:`pipeline.documents`)."""
    doc = read_document(data, _STATE, max_bytes=MAX_STATE_BYTES, version=STATE_VERSION)
    if doc.camera_id != camera_id:
        msg = f"it is the state of camera {doc.camera_id[:64]!r}"
        raise DocumentRefused(msg)
    state = CameraState(last_frame=doc.last_frame, last_status_at=doc.last_status_at,
                        offline_since=doc.offline_since, offline_reason=doc.offline_reason,
                        offline_fired=set(doc.offline_fired))
    state.tracks = OrderedDict(
        (track_id, TrackState(last_seen=t.last_seen, point=t.point, entered=dict(t.entered), fired=set(t.fired),
                              sides=dict(t.sides)))
        for track_id, t in doc.tracks
    )
    state.crowds = {rule: CrowdState(c.since, c.fired) for rule, c in doc.crowds.items()}
    state.cooldowns = {(rule, subject): at for rule, subject, at in doc.cooldowns}
    return state


class RulesStateStore:
    """Per-camera engine states under ``prefix`` in the object store (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.refused = 0

    def key(self, camera_id: str, topic: str) -> str:
        return join_key(self.prefix, camera_id, f"{topic}.json")

    def load(self, camera_id: str, topic: str) -> CameraState | None:
        key = self.key(camera_id, topic)
        try:
            data = self.store.get(key, length=MAX_STATE_BYTES + 1)
        except ObjectNotFound:
            return None
        try:
            return state_from_json(data, camera_id)
        except ValueError as exc:
            self.refused += 1
            log.error("rules: state %s refused (%s); camera %s starts empty", key, exc, camera_id)
            return None

    def save(self, camera_id: str, topic: str, state: CameraState) -> None:
        self.store.put(self.key(camera_id, topic), state_to_json(camera_id, state), content_type="application/json")
