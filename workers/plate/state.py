"""The plate worker's durable per-track state (the in-memory table is :mod:`pipeline.tracking.table`).

**Durable (plates).** A track's votes and its last published revision are also written to the object store
at ``{state_prefix}/{camera}/{track}.json`` after the worker's outputs for a batch were flushed and before
its offsets are committed. A worker that meets a track it does not hold (restart, rebalance, eviction) loads
that object first, so it continues the same vote and the next revision number; redelivered crops are
recognised by object ID and not counted twice. Revisions therefore never restart at 0 for a track that
already published, and a read built from fewer votes never goes out under a higher revision than a
better one. The objects are small (a few KB); expire the prefix with the store's lifecycle rules after
the plates topic's retention (7 days).

**Data only.** The object is JSON with ``"version": 1`` (objects written before the field existed have the
same layout and read as version 1). At most :data:`MAX_STATE_BYTES` are fetched (a ranged read); a larger,
non-JSON, other-version or ill-typed object (every field is validated strictly, timestamps must carry a
zone) is refused: logged, counted in :attr:`PlateStateStore.refused`, and the track starts afresh — the
worker never fails on a bad state object.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import TypeAdapter

from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectStore
from pipeline.track_state import TrackStateStore
from workers.plate.voting import TrackPlates

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_STATE_BYTES = 1024 * 1024
"""A track holds at most ``plate.max_reads_per_track`` reads and the IDs of the crops it counted: a few KB."""
_TRACK_PLATES = TypeAdapter(TrackPlates)


class PlateStateStore(TrackStateStore[TrackPlates]):
    """The durable copy of plate track states in the object store (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        super().__init__(store, prefix, what="plate", decode=_decode, encode=_encode, max_bytes=MAX_STATE_BYTES)


def _encode(state: TrackPlates) -> dict[str, Any]:
    return {"version": STATE_VERSION, **state.to_dict()}


def _decode(data: bytes) -> TrackPlates:
    """The track state in ``data``; DocumentRefused (a ValueError, with the reason) when it is not one."""
    state = read_document(data, _TRACK_PLATES, max_bytes=MAX_STATE_BYTES, version=STATE_VERSION,
                          missing_version=STATE_VERSION)
    stamps = [state.last_seen, *(r.captured_at for r in state.reads)]
    if any(t is not None and t.utcoffset() is None for t in stamps):
        msg = "a timestamp without a time zone"
        raise DocumentRefused(msg)
    return state
