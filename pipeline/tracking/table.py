"""Per-track state of a worker: a bounded in-memory table (used by the plate and the face worker).

:class:`TrackTable` holds one state object per track, least recently used first. It evicts
the least recently used track when it holds ``max_tracks``, and every track of a camera whose newest crop
(capture time) is more than ``idle_s`` older than the newest crop seen from that camera. Event time, not
the wall clock, so a worker replaying a backlog does not evict tracks that are still being fed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Generic, Protocol, TypeVar


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
