"""The detect worker's per-camera snapshots are data, never code: a planted pickle (one that creates a file when
unpickled) is refused and nothing runs; malformed, oversized or unknown-version documents are refused, counted
and the camera starts afresh; the JSON document round-trips exactly, so tracking continues across a hand-over
with the same track IDs and outputs as an uninterrupted run; and writing a snapshot never reads the stored one."""

from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import TubelineConfig
from pipeline.core import Detections
from pipeline.store.base import ObjectInfo
from pipeline.store.local import LocalStore
from pipeline.tracking import ByteTracker
from tests.detect_helpers import run_until
from tests.unit.test_detect_crops import Row, Run, centred
from workers.detect import state as state_module
from workers.detect.state import (
    SnapshotRefused,
    TrackCounter,
    decode_snapshot,
    encode_snapshot,
    load_snapshot,
    save_snapshot,
    snapshot_key,
)

TRACKER = TubelineConfig().detect.tracker


class _Plant:
    """Unpickling this creates ``target`` (a stand-in for any code an attacker would run)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.target,))


def _payload(target: Path) -> bytes:
    return pickle.dumps(_Plant(target), protocol=pickle.HIGHEST_PROTOCOL)


def crossing(frames: int = 30, gone: int = 13) -> list[list[Row]]:
    """A car driving right, a person walking left, and a truck that appears halfway; then nothing (all end)."""
    script: list[list[Row]] = []
    for k in range(frames):
        rows: list[Row] = [("car", centred(90, cx=80 + 14 * k, cy=300), 0.8),
                           ("person", (560 - 9 * k, 100, 600 - 9 * k, 200), 0.7 if k % 4 else 0.4)]
        if k >= frames // 2:
            rows.append(("truck", centred(120, cx=320, cy=120 + 3 * k), 0.75))
        script.append(rows)
    return script + [[] for _ in range(gone)]


def _outputs(run: Run) -> tuple[list, list, list]:
    detections = [(d.sequence, [(o.track_id, o.box, o.class_name) for o in d.objects]) for d in run.detections]
    summaries = sorted((s.track_id, s.segment, s.to_json()) for s in run.summaries)
    crops = sorted((c.object_id, c.crop_key, run.store.get(c.crop_key)) for c in run.crops)
    return detections, summaries, crops


def _state_after(run: Run, frames: int):  # noqa: ANN202
    worker = run.worker()
    worker.setup()
    try:
        deadline = time.monotonic() + 60
        while worker.frames_done < frames:
            assert time.monotonic() < deadline, f"only {worker.frames_done} of {frames} frames processed"
            worker.step()
        worker.checkpoint()
        return worker.states["cam"]
    finally:
        worker.teardown()


# -- round trip and continuity -----------------------------------------------------------------------
def test_tracker_state_round_trip_gives_bit_identical_updates() -> None:
    rng = np.random.default_rng(5)
    names = ("person", "car", "truck")

    def frame(k: int) -> Detections:
        boxes = np.array([[10 + 7 * k, 50, 60 + 7 * k, 120], [400 - 5 * k, 200, 460 - 5 * k, 300],
                          [200, 20 + 2 * k, 240, 80 + 2 * k]], dtype=np.float32) + rng.normal(0, 1.5, (3, 4))
        return Detections(xyxy=boxes.astype(np.float32), confidence=rng.uniform(0.35, 0.9, 3).astype(np.float32),
                          class_id=np.array([0, 1, 2], dtype=np.int32), source="t", class_names=names)

    frames = [frame(k) for k in range(40)]
    counter = TrackCounter()
    whole = ByteTracker(**TRACKER.model_dump(), id_source=counter)
    for k in range(20):
        whole.update(frames[k], k * 0.2)
    saved = whole.export_state()
    assert saved.tracks
    copy = ByteTracker(**TRACKER.model_dump(), id_source=TrackCounter(counter.next))
    copy.restore_state(saved)
    assert copy.export_state() == saved
    for k in range(20, 40):
        a, b = whole.update(frames[k], k * 0.2), copy.update(frames[k], k * 0.2)
        assert a.tracker_id.tolist() == b.tracker_id.tolist()
        assert np.array_equal(a.xyxy, b.xyxy)
        assert [c.track_id for c in whole.removed] == [c.track_id for c in copy.removed]
    assert whole.export_state() == copy.export_state()


def test_snapshot_document_round_trips_exactly(tmp_path: Path) -> None:
    run = Run(crossing(), tmp_path)
    state = _state_after(run, 20)
    assert state.tracks and state.tracker.export_state().tracks
    data = encode_snapshot(state)
    doc = json.loads(data)
    assert doc["format"] == "tubeline.detect.camera-state" and doc["version"] == 2
    again = decode_snapshot(data, TRACKER)
    assert encode_snapshot(again) == data
    assert again.tracker.export_state() == state.tracker.export_state()
    assert again.tracks == state.tracks and again.counter.next == state.counter.next


@pytest.mark.parametrize("split_at", [3, 16, 31])
def test_a_hand_over_through_the_snapshot_continues_the_same_tracks(tmp_path: Path, split_at: int) -> None:
    """A worker stops after ``split_at`` frames (mid-track, while a track is tentative, after tracks ended);
    the next one, on the same store and group, emits exactly what one uninterrupted worker emits."""
    script = crossing()
    whole = Run(script, tmp_path / "whole").all()
    split = Run(script, tmp_path / "split", {"detect.max_batch": 1})
    _state_after(split, split_at)
    assert split.store.exists("state/detect/cam.json") and not split.store.exists("state/detect/cam.pkl")
    follower = split.worker(close_on_stop=True)
    run_until(follower, len(script) - split_at)
    assert follower.snapshots_refused == 0
    assert _outputs(split) == _outputs(whole)
    assert len({s[0] for s in _outputs(whole)[1]}) >= 3


# -- refusals ------------------------------------------------------------------------------------------
def test_a_planted_pickle_runs_nothing_and_is_refused(tmp_path: Path) -> None:
    control = tmp_path / "control-created"
    pickle.loads(_payload(control))  # noqa: S301 - proves the payload is live: unpickling it creates a file
    assert control.exists()

    target = tmp_path / "owned"
    run = Run(crossing(), tmp_path)
    run.store.put("state/detect/cam.pkl", _payload(target))  # where version 1 kept the state
    run.store.put(snapshot_key("cam"), _payload(target))  # and where the state lives now
    worker = run.worker(close_on_stop=True)
    run_until(worker, len(crossing()))
    assert not target.exists(), "a snapshot was unpickled"
    assert worker.snapshots_refused == 1
    first = min(run.detections, key=lambda d: d.sequence)
    ids = {o.track_id for d in run.detections for o in d.objects if o.track_id}
    assert first.sequence == 0 and ids and all(i.startswith("cam:s1.0:") for i in ids)  # fresh epoch, fresh IDs
    stored = json.loads(run.store.get(snapshot_key("cam")))  # the refused object was overwritten by a real one
    assert stored["format"] == "tubeline.detect.camera-state" and stored["last_sequence"] == len(crossing()) - 1


@pytest.fixture(scope="module")
def valid_doc(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real snapshot document, taken mid-run (live tracks, tentative ones, a held crop)."""
    return encode_snapshot(_state_after(Run(crossing(), tmp_path_factory.mktemp("valid")), 20))


def _valid(valid_doc: bytes) -> dict:
    return json.loads(valid_doc)


def _edit(doc: dict, path: str, value: object) -> dict:
    node: object = doc
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is _DELETE:
        del node[last]  # type: ignore[union-attr]
    else:
        node[last] = value  # type: ignore[index]
    return doc


_DELETE = object()
BAD_EDITS = {
    "older version (pickle era)": ("version", 1),
    "newer version": ("version", 3),
    "other format": ("format", "tubeline.other"),
    "unknown field": ("surprise", {"__reduce__": "os.system"}),
    "missing field": ("epoch", _DELETE),
    "string for a number": ("last_sequence", "12"),
    "short covariance": ("tracker_tracks.0.covariance", [1.0] * 63),
    "confirmed state without an id": ("tracker_tracks.0.track_id", None),
    "negative hits": ("tracker_tracks.0.hits", -1),
    "camera id with a path": ("camera_id", "../auth"),
    "crop key outside the pattern": ("tracks.0.best_crop_key", "/etc/passwd"),
    "held crop not base64": ("tracks.0.held", {"sequence": 1, "captured_at": "2026-11-25T08:00:00Z",
                                               "box": [0, 0, 1, 1], "score": 0.5, "quality": 0.5,
                                               "jpeg_base64": "not base64!", "colour": "red",
                                               "colour_confidence": 0.5}),
    "naive timestamp": ("tracks.0.started_at", "2026-11-25T08:00:00"),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_malformed_documents_are_refused(valid_doc: bytes, case: str) -> None:
    path, value = BAD_EDITS[case]
    doc = _edit(_valid(valid_doc), path, value)
    with pytest.raises(SnapshotRefused):
        decode_snapshot(json.dumps(doc).encode(), TRACKER)


@pytest.mark.parametrize("data", [b"", b"\x80\x05K\x01.", b"[]", b"null", b'{"format": "tubeline.detect.camera-state"',
                                  b'{"format": "tubeline.detect.camera-state", "version": 2}',
                                  b'{"version": 2, "x": NaN}', "{\"é\": 1}".encode("utf-16")])
def test_bytes_that_are_not_a_document_are_refused(data: bytes) -> None:
    with pytest.raises(SnapshotRefused):
        decode_snapshot(data, TRACKER)


def test_non_finite_numbers_are_refused(valid_doc: bytes) -> None:
    text = json.dumps(_valid(valid_doc))
    assert re.search(r'"tracker_time": [0-9.e+-]+,', text)
    for number in ("NaN", "Infinity", "-Infinity", "1e400"):  # the last parses as inf
        edited = re.sub(r'"tracker_time": [0-9.e+-]+,', f'"tracker_time": {number},', text, count=1)
        with pytest.raises(SnapshotRefused, match="tracker_time: Input should be a finite number"):
            decode_snapshot(edited.encode(), TRACKER)


def test_an_oversized_snapshot_is_refused_before_it_is_fetched(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = _CountingStore(tmp_path / "store")
    state = _state_after(Run(crossing(), tmp_path / "run"), 20)
    save_snapshot(store, state)
    monkeypatch.setattr(state_module, "MAX_SNAPSHOT_BYTES", 1000)
    with pytest.raises(SnapshotRefused, match="more than the 1000"):
        load_snapshot(store, "cam", TRACKER)
    assert store.gets == []


def test_a_snapshot_of_another_camera_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    state = _state_after(Run(crossing(), tmp_path / "run"), 20)
    store.put(snapshot_key("cam-2"), encode_snapshot(state))
    with pytest.raises(SnapshotRefused, match="of camera 'cam'"):
        load_snapshot(store, "cam-2", TRACKER)
    assert load_snapshot(store, "cam-3", TRACKER) is None


def test_every_refusal_is_counted_and_the_worker_keeps_going(tmp_path: Path) -> None:
    run = Run(crossing(), tmp_path)
    run.store.put(snapshot_key("cam"), b'{"format": "tubeline.detect.camera-state", "version": 99}')
    worker = run.worker(close_on_stop=True)
    run_until(worker, len(crossing()))
    assert worker.snapshots_refused == 1 and worker.frames_done == len(crossing())
    assert len(run.summaries) >= 3


# -- writes never read ---------------------------------------------------------------------------------
class _CountingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets: list[str] = []
        self.stats: list[str] = []
        self.puts: list[str] = []
        self._in_put = False

    def put(self, key: str, data, **kwargs) -> ObjectInfo:  # noqa: ANN001, ANN003
        self.puts.append(key)
        self._in_put = True  # put() answers with the new object's stat: not a read of the stored object
        try:
            return super().put(key, data, **kwargs)
        finally:
            self._in_put = False

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        self.gets.append(key)
        return super().get(key, start=start, length=length)

    def stat(self, key: str) -> ObjectInfo:
        if not self._in_put:
            self.stats.append(key)
        return super().stat(key)


def test_snapshots_are_written_without_reading_the_stored_one(tmp_path: Path) -> None:
    run = Run(crossing(), tmp_path, {"detect.max_batch": 1, "detect.commit_interval_s": 0.001})
    run.store = _CountingStore(tmp_path / "counting")
    worker = run.worker(close_on_stop=True)
    run_until(worker, len(crossing()))
    key = snapshot_key("cam")
    assert run.store.exists(key) and run.store.puts.count(key) >= 10  # a snapshot at (nearly) every batch
    assert run.store.gets.count(key) == 0 and run.store.stats.count(key) == 2  # first sight + the check above
