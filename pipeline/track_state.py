"""Per-track state documents in the object store, shared by the workers that keep state per track (plate, face).

One JSON document per track at ``{prefix}/{camera}/{track}.json``. Loading reads at most ``max_bytes + 1`` bytes
and hands them to the worker's strict decoder (:mod:`pipeline.documents`: data only, never code); a document that
is refused, or that belongs to another track, is counted and logged and the track starts afresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from pipeline.documents import DocumentRefused
from pipeline.store.base import ObjectNotFound, ObjectStore, join_key

log = logging.getLogger(__name__)


class TrackState(Protocol):
    @property
    def camera_id(self) -> str: ...

    @property
    def track_id(self) -> str: ...


S = TypeVar("S", bound=TrackState)


class TrackStateStore(Generic[S]):
    """The durable copy of one worker's track states (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str, *, what: str, decode: Callable[[bytes], S],
                 encode: Callable[[S], dict[str, Any]], max_bytes: int) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.what = what
        self.decode = decode
        self.encode = encode
        self.max_bytes = max_bytes
        self.refused = 0

    def key(self, camera_id: str, track_id: str) -> str:
        return join_key(self.prefix, camera_id, f"{track_id}.json")

    def load(self, camera_id: str, track_id: str) -> S | None:
        key = self.key(camera_id, track_id)
        try:
            data = self.store.get(key, length=self.max_bytes + 1)
        except ObjectNotFound:
            return None
        try:
            state = self.decode(data)
            if (state.camera_id, state.track_id) != (camera_id, track_id):
                msg = f"it is the state of {state.camera_id[:64]}/{state.track_id[:80]}"
                raise DocumentRefused(msg)
        except ValueError as exc:
            self.refused += 1
            log.error("%s state %s refused (%s); starting the track afresh", self.what, key, exc)
            return None
        return state

    def save(self, state: S) -> None:
        body = json.dumps(self.encode(state), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        self.store.put(self.key(state.camera_id, state.track_id), body.encode("utf-8"),
                       content_type="application/json")
