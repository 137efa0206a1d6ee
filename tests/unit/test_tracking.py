"""ByteTracker on synthetic scenes (table-driven) plus one behaviour check with the real detector on vtest.avi.

Synthetic scenes are lists of frames ``(timestamp, [(object_name, box, score, class), ...] | None)``; ``run``
feeds them to a tracker and returns, per object name, the tracker IDs it was given (``None`` where it was not
output), using ``data["detection_index"]`` to map output rows back to the input.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import Detections
from pipeline.tracking import ByteTracker, ClosedTrack

NAMES = ("person", "car", "truck", "bus")
PERSON, CAR, TRUCK, BUS = range(4)
DT = 0.2  # 5 fps analysis rate

Obj = tuple[str, tuple[float, float, float, float], float, int]
Frame = tuple[float, list[Obj] | None]


def box_at(x: float, y: float, w: float = 40, h: float = 100) -> tuple[float, float, float, float]:
    return (x, y, x + w, y + h)


def dets(objs: Sequence[Obj]) -> Detections:
    if not objs:
        return Detections.empty(class_names=NAMES)
    return Detections(
        xyxy=np.array([o[1] for o in objs], dtype=np.float32),
        confidence=np.array([o[2] for o in objs], dtype=np.float32),
        class_id=np.array([o[3] for o in objs], dtype=np.int32),
        class_names=NAMES,
    )


def run(tracker: ByteTracker, frames: Sequence[Frame]) -> dict[str, list[int | None]]:
    ids: dict[str, list[int | None]] = {}
    for t, objs in frames:
        out = tracker.update(None if objs is None else dets(objs), t)
        seen = {}
        if objs is not None:
            for row, tid in zip(out.data["detection_index"], out.tracker_id, strict=True):
                seen[objs[int(row)][0]] = int(tid)
            for name, *_ in objs:
                ids.setdefault(name, []).append(seen.get(name))
    return ids


def walk(name: str, x0: float, vx: float, n: int, y: float = 100, score: float = 0.9, cls: int = PERSON,
         t0: float = 0.0, skip: Sequence[int] = ()) -> list[tuple[float, Obj | None]]:
    """An object moving at ``vx`` px/s, sampled every DT; frames in ``skip`` are missing (occluded)."""
    return [(t0 + k * DT, None if k in skip else (name, box_at(x0 + vx * k * DT, y), score, cls)) for k in range(n)]


def merge(*tracks: list[tuple[float, Obj | None]]) -> list[Frame]:
    times = sorted({round(t, 6) for tr in tracks for t, _ in tr})
    frames: list[Frame] = []
    for t in times:
        objs = [o for tr in tracks for tt, o in tr if round(tt, 6) == t and o is not None]
        frames.append((t, objs))
    return frames


def distinct(ids: list[int | None]) -> set[int]:
    return {i for i in ids if i is not None}


# -- crossing ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dy", "occluded"),
    [(0, ()), (20, ()), (50, ()), (0, (9, 10)), (20, (9, 10, 11))],
    ids=["same-row", "offset-20", "offset-50", "same-row-hidden-2", "offset-20-hidden-3"],
)
def test_two_objects_crossing_keep_their_ids(dy: float, occluded: tuple[int, ...]) -> None:
    # a walks right, b walks left at 200 px/s; they meet around frame 10; b may be undetected while behind a
    a = walk("a", 0, 200, 21)
    b = walk("b", 400, -200, 21, y=100 + dy, skip=occluded)
    ids = run(ByteTracker(), merge(a, b))
    assert len(distinct(ids["a"])) == 1 and len(distinct(ids["b"])) == 1, ids
    assert distinct(ids["a"]) != distinct(ids["b"])


# -- occlusion vs buffer -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gap_s", "buffer_s", "same_id"),
    [(0.4, 2.0, True), (1.6, 2.0, True), (2.6, 2.0, False), (1.0, 0.5, False), (0.8, 1.0, True)],
)
def test_occlusion_shorter_than_the_buffer_keeps_the_id(gap_s: float, buffer_s: float, same_id: bool) -> None:
    gap = round(gap_s / DT)
    frames = walk("p", 0, 50, 10 + gap + 10, skip=range(10, 10 + gap))
    tracker = ByteTracker(track_buffer_s=buffer_s)
    ids = [i for i in run(tracker, merge(frames))["p"] if i is not None]
    assert (len(set(ids)) == 1) is same_id, ids


def test_track_lost_longer_than_the_buffer_is_reported_removed_once() -> None:
    tracker = ByteTracker(track_buffer_s=1.0)
    removed: list[ClosedTrack] = []
    for k in range(5):
        tracker.update(dets([("p", box_at(10 * k, 0), 0.9, PERSON)]), k * DT)
        removed += tracker.removed
    for k in range(5, 16):  # empty frames: last seen at 0.8 s, removed once t - 0.8 > 1.0
        tracker.update(dets([]), k * DT)
        if tracker.removed:
            assert k * DT == pytest.approx(2.0)
        removed += tracker.removed
    assert len(removed) == 1
    closed = removed[0]
    assert (closed.track_id, closed.class_id, closed.hits, closed.reason) == (1, PERSON, 5, "lost")
    assert closed.first_timestamp == pytest.approx(0.0) and closed.last_timestamp == pytest.approx(0.8)
    assert tracker.active_ids == []


# -- score bands -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # high scores start a track (confirmed on the 2nd hit), low scores (0.3 <= s < 0.45) continue it
        ([0.9, 0.9, 0.35, 0.3, 0.4, 0.9], [None, 1, 1, 1, 1, 1]),
        # low scores alone never start a track
        ([0.35, 0.35, 0.35, 0.35, 0.35], [None] * 5),
        # a score between track_thresh and new_track_thresh continues but does not start
        ([0.47, 0.47, 0.47], [None] * 3),
        ([0.9, 0.9, 0.47, 0.47], [None, 1, 1, 1]),
        # below low_thresh: ignored, the track is lost meanwhile and picked up again by a high score
        ([0.9, 0.9, 0.2, 0.1, 0.9], [None, 1, None, None, 1]),
    ],
    ids=["low-continues", "low-never-starts", "mid-never-starts", "mid-continues", "below-low-ignored"],
)
def test_score_bands(scores: list[float], expected: list[int | None]) -> None:
    frames = [(k * DT, [("p", box_at(10 * k, 0), s, PERSON)]) for k, s in enumerate(scores)]
    assert run(ByteTracker(), frames)["p"] == expected


def test_low_score_detection_continues_only_a_tracked_track() -> None:
    tracker = ByteTracker(track_buffer_s=5.0)
    frames: list[Frame] = [(k * DT, [("p", box_at(0, 0), 0.9, PERSON)]) for k in range(3)]
    frames += [(k * DT, []) for k in range(3, 5)]  # lost
    frames += [(k * DT, [("p", box_at(0, 0), 0.35, PERSON)]) for k in range(5, 8)]  # low score: no revival
    frames += [(8 * DT, [("p", box_at(0, 0), 0.9, PERSON)])]  # high score revives the lost track
    assert run(tracker, frames)["p"] == [None, 1, 1, None, None, None, 1]


# -- classes -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "then", "groups", "same_id"),
    [
        (PERSON, CAR, (("car", "truck", "bus"),), False),
        (CAR, TRUCK, (("car", "truck", "bus"),), True),
        (BUS, CAR, (("car", "truck", "bus"),), True),
        (CAR, TRUCK, (), False),
        (PERSON, PERSON, (), True),
    ],
    ids=["person-vs-car", "car-truck-grouped", "bus-car-grouped", "car-truck-ungrouped", "person-person"],
)
def test_class_aware_association(first: int, then: int, groups: tuple, same_id: bool) -> None:
    frames = [(k * DT, [("o", box_at(5 * k, 0), 0.9, first if k < 4 else then)]) for k in range(8)]
    ids = [i for i in run(ByteTracker(class_groups=groups), frames)["o"] if i is not None]
    assert (len(set(ids)) == 1) is same_id, ids


def test_person_next_to_a_car_never_takes_its_track() -> None:
    car = [(k * DT, ("car", box_at(100, 100, 120, 60), 0.9, CAR)) for k in range(10)]
    # a person appears exactly where the car is while the car is (once) not detected
    person = [(k * DT, ("person", box_at(100, 100, 120, 60), 0.9, PERSON) if k >= 5 else None) for k in range(10)]
    car_missing = [(t, o if round(t / DT) != 5 else None) for t, o in car]
    ids = run(ByteTracker(), merge(car_missing, person))
    assert distinct(ids["car"]).isdisjoint(distinct(ids["person"]))
    assert len(distinct(ids["car"])) == 1


# -- frame skipping ------------------------------------------------------------------------------------------
def test_skipped_frames_advance_the_motion_model() -> None:
    # 300 px/s: after a skipped frame the box has moved 120 px, beyond any IoU with its last position
    frames: list[Frame] = []
    for k in range(12):
        analysed = k < 3 or k % 2 == 1
        obj = ("p", box_at(300 * k * DT, 0), 0.9, PERSON)
        frames.append((k * DT, [obj] if analysed else None))
    ids = run(ByteTracker(), frames)["p"]
    assert ids[0] is None and len(set(ids[1:])) == 1, ids


def test_skipped_frame_returns_an_empty_container_with_the_index_column() -> None:
    tracker = ByteTracker()
    for k in range(3):
        tracker.update(dets([("p", box_at(0, 0), 0.9, PERSON)]), k * DT)
    out = tracker.update(None, 3 * DT)
    assert len(out) == 0 and out.data["detection_index"].dtype == np.int64
    assert tracker.active_ids == [1]  # not lost for lack of a match


def test_skipped_frames_do_not_make_a_track_lost() -> None:
    # a lost track could not be continued by a low-score detection; a skipped frame must not lose it
    frames: list[Frame] = [(k * DT, [("p", box_at(0, 0), 0.9, PERSON)]) for k in range(3)]
    frames += [(k * DT, None) for k in range(3, 6)]
    frames += [(6 * DT, [("p", box_at(0, 0), 0.35, PERSON)])]
    assert run(ByteTracker(), frames)["p"] == [None, 1, 1, 1]


def test_skipping_longer_than_the_buffer_removes_the_track() -> None:
    tracker = ByteTracker(track_buffer_s=1.0)
    for k in range(3):
        tracker.update(dets([("p", box_at(0, 0), 0.9, PERSON)]), k * DT)
    tracker.update(None, 1.0)
    assert tracker.removed == []
    tracker.update(None, 1.5)
    assert [c.track_id for c in tracker.removed] == [1]


@pytest.mark.parametrize("times", [[0, 0.1, 0.5, 0.6, 1.3, 1.4, 1.5], [0, 0.2, 0.4, 1.2, 1.4, 2.0, 2.2]])
def test_irregular_timestamps_keep_a_constant_velocity_track(times: list[float]) -> None:
    frames = [(t, [("p", box_at(150 * t, 0), 0.9, PERSON)]) for t in times]
    ids = run(ByteTracker(), frames)["p"]
    assert len(distinct(ids)) == 1 and ids[1:] == [ids[1]] * (len(ids) - 1)


def test_time_going_backwards_is_an_error() -> None:
    tracker = ByteTracker()
    tracker.update(dets([]), 1.0)
    with pytest.raises(ValueError, match="earlier"):
        tracker.update(dets([]), 0.5)


# -- ids -----------------------------------------------------------------------------------------------------
def test_trackers_sharing_one_id_source_never_collide() -> None:
    source = itertools.count(1).__next__
    a, b = ByteTracker(id_source=source), ByteTracker(id_source=source)
    seen_a, seen_b = set(), set()
    for k in range(6):
        objs = [(f"o{i}", box_at(60 * i, 0), 0.9, PERSON) for i in range(3)]
        seen_a |= set(a.update(dets(objs), k * DT).tracker_id.tolist())
        seen_b |= set(b.update(dets(objs), k * DT).tracker_id.tolist())
    assert len(seen_a) == 3 and len(seen_b) == 3 and seen_a.isdisjoint(seen_b)


def test_ids_come_from_the_injected_source() -> None:
    issued = iter([1000, 2000, 3000])
    tracker = ByteTracker(id_source=lambda: next(issued))
    for k in range(3):
        out = tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON), ("b", box_at(300, 0), 0.9, PERSON)]), k * DT)
    assert sorted(out.tracker_id.tolist()) == [1000, 2000]


def test_default_counters_are_per_instance() -> None:
    outs = []
    for _ in range(2):
        tracker = ByteTracker()
        for k in range(2):
            out = tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), k * DT)
        outs.append(out.tracker_id.tolist())
    assert outs == [[1], [1]]


def test_an_id_below_one_is_rejected() -> None:
    tracker = ByteTracker(id_source=lambda: 0)
    tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), 0.0)
    with pytest.raises(ValueError, match=">= 1"):
        tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), DT)


# -- container contract --------------------------------------------------------------------------------------
def test_input_is_never_modified_and_output_holds_detection_rows() -> None:
    tracker = ByteTracker()
    objs = [("a", box_at(0, 0), 0.9, PERSON), ("low", box_at(500, 0), 0.35, PERSON), ("b", box_at(200, 0), 0.8, CAR)]
    for k in range(3):
        moved = [(n, (b[0] + 3 * k, b[1], b[2] + 3 * k, b[3]), s, c) for n, b, s, c in objs]
        inp = dets(moved).with_data(embedding=np.arange(6, dtype=np.float32).reshape(3, 2))
        before = {name: np.array(getattr(inp, name)) for name in ("xyxy", "confidence", "class_id", "tracker_id")}
        out = tracker.update(inp, k * DT)
        for name, value in before.items():
            np.testing.assert_array_equal(getattr(inp, name), value)
        assert set(inp.data) == {"embedding"} and (inp.tracker_id == -1).all()
    idx = out.data["detection_index"]
    assert idx.tolist() == [0, 2]  # the low-score object never started a track
    np.testing.assert_array_equal(out.xyxy, inp.xyxy[idx])  # detection boxes, not Kalman estimates
    np.testing.assert_array_equal(out.confidence, inp.confidence[idx])
    np.testing.assert_array_equal(out.class_id, inp.class_id[idx])
    np.testing.assert_array_equal(out.data["embedding"], inp.data["embedding"][idx])
    assert (out.tracker_id >= 1).all() and out.class_names == NAMES


# -- ending tracks -------------------------------------------------------------------------------------------
def test_close_all_reports_confirmed_tracks_with_their_times() -> None:
    tracker = ByteTracker()
    tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), 10.0)
    tracker.update(dets([("a", box_at(5, 0), 0.9, PERSON), ("b", box_at(300, 0, 120, 60), 0.9, TRUCK)]), 10.2)
    tracker.update(dets([("a", box_at(10, 0), 0.9, PERSON), ("b", box_at(300, 0, 120, 60), 0.9, CAR)]), 10.4)
    tracker.update(dets([("c", box_at(600, 0), 0.9, PERSON)]), 10.6)  # c stays tentative
    closed = sorted(tracker.close_all(), key=lambda c: c.track_id)
    assert [(c.track_id, c.first_timestamp, c.last_timestamp, c.hits, c.reason) for c in closed] == [
        (1, 10.0, 10.4, 3, "closed"),
        (2, 10.2, 10.4, 2, "closed"),
    ]
    assert closed[1].class_id == CAR or closed[1].class_id == TRUCK
    assert tracker.removed == closed or sorted(tracker.removed, key=lambda c: c.track_id) == closed
    assert tracker.active_ids == []
    out = tracker.update(dets([("a", box_at(15, 0), 0.9, PERSON)]), 10.8)
    assert len(out) == 0  # a fresh tentative track, not a revived one
    out = tracker.update(dets([("a", box_at(20, 0), 0.9, PERSON)]), 11.0)
    assert out.tracker_id.tolist() == [3]  # IDs are never reused


def test_reset_forgets_tracks_without_reporting_and_keeps_counting() -> None:
    tracker = ByteTracker()
    for k in range(2):
        tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), k * DT)
    tracker.reset()
    assert tracker.active_ids == [] and tracker.removed == []
    tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), 0.0)  # the clock restarts too
    out = tracker.update(dets([("a", box_at(0, 0), 0.9, PERSON)]), DT)
    assert out.tracker_id.tolist() == [2]


@pytest.mark.parametrize(
    "kwargs",
    [{"track_thresh": 1.5}, {"low_thresh": 0.6, "track_thresh": 0.5}, {"new_track_thresh": 0.4},
     {"min_hits": 0}, {"track_buffer_s": -1.0}, {"track_buffer_s": float("inf")}],
)
def test_bad_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ByteTracker(**kwargs)


# -- real detector -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_detector_and_tracker_on_annotated_vtest(testdata: Path) -> None:
    """Behaviour check, not the gate: the first 60 analysed frames (default settings: person MOTA 0.75, IDF1 0.70)."""
    from benchmarks.tracking.run import make_detector, run_span

    detector = make_detector(None, ByteTracker().config.low_thresh)
    result = run_span(detector, ByteTracker, 0, 120, video=testdata / "vtest.avi")
    person = result.summaries["person"]
    assert result.frames == 60
    assert person["mota"] > 0.55, person
    assert person["idf1"] > 0.5, person
    assert person["idsw"] <= 15, person
