"""The plate worker's durable per-track state (the in-memory table is :mod:`pipeline.tracking.table`).

**Durable (plates).** A track's votes and its last published revision are also written to the object store
at ``{state_prefix}/{camera}/{track}.json`` after the worker's outputs for a batch were flushed and before
its offsets are committed. A worker that meets a track it does not hold (restart, rebalance, eviction) loads
that object first, so it continues the same vote and the next revision number; redelivered crops are
recognised by object ID and not counted twice. Revisions therefore never restart at 0 for a track that
already published, and a read built from fewer votes never goes out under a higher revision than a
better one. The objects are small (a few KB); expire the prefix with the store's lifecycle rules after
the plates topic's retention (7 days).
"""

from __future__ import annotations

import json
import logging

from pipeline.store.base import ObjectNotFound, ObjectStore, join_key
from workers.plate.voting import TrackPlates

log = logging.getLogger(__name__)


class PlateStateStore:
    """The durable copy of plate track states in the object store (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, camera_id: str, track_id: str) -> str:
        return join_key(self.prefix, camera_id, f"{track_id}.json")

    def load(self, camera_id: str, track_id: str) -> TrackPlates | None:
        try:
            data = self.store.get(self.key(camera_id, track_id))
        except ObjectNotFound:
            return None
        try:
            return TrackPlates.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("plate state %s is unreadable (%s); starting the track afresh", self.key(camera_id, track_id),
                        exc)
            return None

    def save(self, state: TrackPlates) -> None:
        body = json.dumps(state.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.store.put(self.key(state.camera_id, state.track_id), body, content_type="application/json")
