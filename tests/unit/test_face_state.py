"""The face worker's per-track state round-trips exactly (float32 embeddings included) and a bad one is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.enrich import FaceWorkerConfig
from pipeline.store.local import LocalStore
from workers.face.quality import TrackFaces, reason_to_publish
from workers.face.state import FaceStateStore, state_to_dict


def _track() -> TrackFaces:
    rng = np.random.default_rng(3)
    track = TrackFaces("cam-1:s1:7", "cam-1", last_seen=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    for quality in (0.61, 0.83):
        vector = rng.normal(size=128).astype(np.float32)
        track.add(quality, vector / np.linalg.norm(vector))
    track.seen |= {"obj-1", "obj-2", "obj-3"}
    return track


def test_a_saved_track_decides_like_the_original(tmp_path: Path) -> None:
    saved = FaceStateStore(LocalStore(tmp_path), "state/face")
    track = _track()
    saved.save(track)
    loaded = saved.load("cam-1", "cam-1:s1:7")
    assert loaded is not None
    assert state_to_dict(loaded) == state_to_dict(track)
    assert all(a.dtype == np.float32 and np.array_equal(a, b) for a, b in zip(loaded.embeddings, track.embeddings,
                                                                                strict=True))
    settings = FaceWorkerConfig()
    probe = (track.embeddings[0] + 0.05 * track.embeddings[1]).astype(np.float32)
    for quality in (0.5, 0.9, 1.2):
        assert reason_to_publish(loaded, quality, probe, settings) == reason_to_publish(track, quality, probe, settings)


@pytest.mark.parametrize("damage", ["version", "other-track", "mismatch", "garbage", "naive-time", "code"])
def test_a_bad_state_starts_the_track_afresh(damage: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    saved = FaceStateStore(store, "state/face")
    doc = state_to_dict(_track())
    if damage == "version":
        doc["version"] = 2
    elif damage == "other-track":
        doc["track_id"] = "cam-1:s1:8"
    elif damage == "mismatch":
        doc["qualities"] = [0.5]
    elif damage == "naive-time":
        doc["last_seen"] = "2026-01-02T03:04:05"
    elif damage == "code":
        doc["seen"] = {"__reduce__": "os.system"}
    body = b"\x80not json" if damage == "garbage" else json.dumps(doc).encode()
    store.put(saved.key("cam-1", "cam-1:s1:7"), body)
    assert saved.load("cam-1", "cam-1:s1:7") is None and saved.refused == 1
