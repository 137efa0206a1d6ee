"""The face worker's durable per-track state: which faces a track published, which crops it already considered.

A track's state (qualities and embeddings of its published faces, the object IDs of the crops considered,
the newest capture time) is written to the object store at ``{state_prefix}/{camera}/{track}.json`` after the
worker's outputs for a batch were flushed and before its offsets are committed. A worker that meets a track
it does not hold (restart, rebalance, eviction) loads that object first, so it judges the next crop against
the same faces — and a redelivered crop is recognised by its object ID and skipped — instead of publishing
faces an uninterrupted worker would have found not better or not different enough. Embeddings are kept as
float32 values written out exactly (JSON numbers of the float32 values). The object is read like untrusted
input (:mod:`pipeline.documents`: at most :data:`MAX_STATE_BYTES`, a JSON object of this version, strictly
validated); one that is not is refused — logged, counted in :attr:`FaceStateStore.refused` — and the track
starts afresh.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectStore
from pipeline.track_state import TrackStateStore
from workers.face.quality import TrackFaces

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_STATE_BYTES = 1024 * 1024
"""At most ``face.max_faces_per_track`` embeddings (a few KB each) and the IDs of the crops considered."""


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    track_id: str
    camera_id: str
    qualities: list[float]
    embeddings: list[list[float]]
    last_seen: AwareDatetime | None
    seen: list[str]


_STATE = TypeAdapter(_State)


def state_to_dict(track: TrackFaces) -> dict[str, Any]:
    return {
        "version": STATE_VERSION, "track_id": track.track_id, "camera_id": track.camera_id,
        "qualities": list(track.qualities), "embeddings": [[float(v) for v in e] for e in track.embeddings],
        "last_seen": track.last_seen.isoformat() if track.last_seen else None, "seen": sorted(track.seen),
    }


def state_from_json(data: bytes) -> TrackFaces:
    """The track state in ``data``; DocumentRefused (a ValueError, with the reason) when it is not one."""
    doc = read_document(data, _STATE, max_bytes=MAX_STATE_BYTES, version=STATE_VERSION)
    if len(doc.embeddings) != len(doc.qualities) or len({len(e) for e in doc.embeddings}) > 1:
        msg = "qualities and embeddings do not match"
        raise DocumentRefused(msg)
    embeddings = [np.asarray(e, dtype=np.float32) for e in doc.embeddings]
    return TrackFaces(doc.track_id, doc.camera_id, list(doc.qualities), embeddings, doc.last_seen, set(doc.seen))


class FaceStateStore(TrackStateStore[TrackFaces]):
    """The durable copy of face track states in the object store (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        super().__init__(store, prefix, what="face", decode=state_from_json, encode=state_to_dict,
                         max_bytes=MAX_STATE_BYTES)
