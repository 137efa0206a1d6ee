"""Per-track state of the enrichment workers: a bounded in-memory table, and the plate worker's durable copy.

**Bounded.** :class:`TrackTable` holds one state object per track, least recently used first. It evicts
the least recently used track when it holds ``max_tracks``, and every track of a camera whose newest crop
(capture time) is more than ``idle_s`` older than the newest crop seen from that camera. Event time, not
the wall clock, so a worker replaying a backlog does not evict tracks that are still being fed. (Used by
the plate and the face worker.)

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
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from pipeline.store.base import ObjectNotFound, ObjectStore, join_key
from workers.plate.voting import TrackPlates

log = logging.getLogger(__name__)


class HasLastSeen(Protocol):
    camera_id: str
    last_seen: datetime | None


S = TypeVar("S", bound=HasLastSeen)


class TrackTable(Generic[S]):
    """Track ID → state, bounded by count (LRU) and by idle time per camera (see the module docstring)."""

    def __init__(self, factory: Callable[[str, str], S], max_tracks: int, idle_s: float) -> None:
        self.factory = factory
        self.max_tracks = max_tracks
        self.idle_s = idle_s
        self._states: OrderedDict[str, S] = OrderedDict()
        self._newest: dict[str, datetime] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._states

    def get(self, camera_id: str, track_id: str) -> S:
        """The track's state (created by ``factory`` when absent), marked most recently used."""
        state = self._states.get(track_id)
        if state is None:
            state = self.factory(camera_id, track_id)
            self._states[track_id] = state
            while len(self._states) > self.max_tracks:
                self._states.popitem(last=False)
                self.evicted += 1
        else:
            self._states.move_to_end(track_id)
        return state

    def peek(self, track_id: str) -> S | None:
        return self._states.get(track_id)

    def observe(self, camera_id: str, when: datetime) -> None:
        """The newest capture time seen from a camera (idle eviction is relative to it)."""
        newest = self._newest.get(camera_id)
        if newest is None or when > newest:
            self._newest[camera_id] = when

    def of_camera(self, camera_id: str) -> Iterator[S]:
        return (s for s in list(self._states.values()) if s.camera_id == camera_id)

    def evict_idle(self) -> int:
        """Drop tracks idle for more than ``idle_s`` (capture time); returns how many."""
        dropped = 0
        for track_id, state in list(self._states.items()):
            newest = self._newest.get(state.camera_id)
            if newest is None or state.last_seen is None:
                continue
            if (newest - state.last_seen).total_seconds() > self.idle_s:
                del self._states[track_id]
                dropped += 1
        self.evicted += dropped
        return dropped


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
