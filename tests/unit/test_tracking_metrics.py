"""MOTA / MOTP / IDF1 on tiny hand-made sequences whose answers are worked out by hand in each case."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.tracking.mot_metrics import MotAccumulator, MotRow, iou_matrix, read_mot_csv, write_mot_csv

A = [0, 0, 10, 10]
B = [100, 0, 110, 10]
A_TALL = [0, 0, 10, 20]  # IoU with A = 100 / 200 = 0.5 exactly
A_TALLER = [0, 0, 10, 21]  # IoU with A = 100 / 210 < 0.5


def frame(gt: dict[int, list[float]], hyp: dict[int, list[float]], **kw: object) -> tuple:
    return (list(gt), np.array(list(gt.values()) or np.zeros((0, 4))),
            list(hyp), np.array(list(hyp.values()) or np.zeros((0, 4))), kw)


def run(frames: list[tuple]) -> dict:
    acc = MotAccumulator(0.5)
    for gt_ids, gt_boxes, hyp_ids, hyp_boxes, kw in frames:
        acc.update(gt_ids, gt_boxes, hyp_ids, hyp_boxes, **kw)
    return acc.summary().as_dict()


CASES = {
    # two objects tracked perfectly for three frames
    "perfect": (
        [frame({1: A, 2: B}, {10: A, 20: B})] * 3,
        {"tp": 6, "fp": 0, "fn": 0, "idsw": 0, "mota": 1.0, "motp": 1.0, "idf1": 1.0, "precision": 1.0},
    ),
    # nothing output: 4 misses of 4 objects; IDF1 = 0 / (4 + 0)
    "all missed": (
        [frame({1: A, 2: B}, {})] * 2,
        {"tp": 0, "fn": 4, "fp": 0, "mota": 0.0, "recall": 0.0, "idf1": 0.0, "idfn": 4},
    ),
    # one object, hypothesis ID changes halfway: 1 switch; MOTA = 1 - 1/4; best ID pairing covers 2 of 4
    "id switch": (
        [frame({1: A}, {10: A})] * 2 + [frame({1: A}, {11: A})] * 2,
        {"tp": 4, "idsw": 1, "mota": 0.75, "idtp": 2, "idfp": 2, "idfn": 2, "idf1": 0.5},
    ),
    # two objects whose hypotheses swap after two frames: 2 switches, MOTA = 1 - 2/8, IDF1 = 2*4/16
    "swap": (
        [frame({1: A, 2: B}, {10: A, 20: B})] * 2 + [frame({1: A, 2: B}, {20: A, 10: B})] * 2,
        {"tp": 8, "idsw": 2, "mota": 0.75, "idtp": 4, "idf1": 0.5},
    ),
    # IoU exactly 0.5 matches; MOTP is the mean IoU (0.5 + 1.0) / 2
    "iou at threshold": (
        [frame({1: A}, {10: A_TALL}), frame({1: A}, {10: A})],
        {"tp": 2, "fp": 0, "fn": 0, "motp": 0.75, "mota": 1.0},
    ),
    # IoU just below 0.5: one miss plus one false positive for one object, MOTA = 1 - 2/1
    "iou below threshold": (
        [frame({1: A}, {10: A_TALLER})],
        {"tp": 0, "fp": 1, "fn": 1, "mota": -1.0, "precision": 0.0, "recall": 0.0, "idf1": 0.0},
    ),
    # CLEAR keeps the previous, still valid pair even when another hypothesis overlaps better
    "keeps previous match": (
        [frame({1: A}, {10: A, 20: B}), frame({1: A}, {10: [0, 0, 10, 15], 20: A})],
        {"tp": 2, "idsw": 0, "fp": 2, "mota": 0.0},
    ),
    # a switch is counted against the last match even across a frame where the object was missed
    "switch after a gap": (
        [frame({1: A}, {10: A}), frame({1: A}, {}), frame({1: A}, {11: A})],
        {"tp": 2, "fn": 1, "idsw": 1, "mota": 1 - 2 / 3},
    ),
    "no switch after a gap": (
        [frame({1: A}, {10: A}), frame({1: A}, {}), frame({1: A}, {10: A})],
        {"tp": 2, "fn": 1, "idsw": 0, "idtp": 2, "idf1": 2 * 2 / (3 + 2)},
    ),
    # same box, different class: never a match
    "class mismatch": (
        [frame({1: A}, {10: A}, gt_classes=[1], hyp_classes=[3])],
        {"tp": 0, "fp": 1, "fn": 1},
    ),
    # ignored ground truth: a hypothesis on it is dropped, and missing it is no miss
    "ignored ground truth": (
        [frame({1: A, 2: B}, {10: A, 20: B}, gt_ignore=[False, True]), frame({1: A, 2: B}, {10: A}, gt_ignore=[False, True])],
        {"gt": 2, "hyp": 2, "tp": 2, "fp": 0, "fn": 0, "mota": 1.0, "idf1": 1.0},
    ),
    # one hypothesis follows one object, then another: no CLEAR switch, but IDF1 pairs it with one only
    "one hypothesis, two objects": (
        [frame({1: A}, {10: A})] * 2 + [frame({2: B}, {10: B})] * 2,
        {"tp": 4, "idsw": 0, "mota": 1.0, "idtp": 2, "idf1": 0.5, "gt_ids": 2, "hyp_ids": 1},
    ),
    # the Hungarian step finds the assignment with most matches, not the greedy best pair
    "optimal assignment": (
        [frame({1: [0, 0, 10, 10], 2: [3, 0, 13, 10]}, {10: [1, 0, 11, 10], 20: [-2, 0, 8, 10]})],
        {"tp": 2, "fp": 0, "fn": 0},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_on_hand_made_sequences(name: str) -> None:
    frames, expected = CASES[name]
    summary = run(frames)
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value), f"{name}: {key} = {summary[key]}, expected {value}"


def test_most_matches_win_over_highest_total_iou() -> None:
    # at IoU >= 0.3: one perfect pair (1.0) or two weak ones (0.35 + 0.35); CLEAR counts the two matches
    acc = MotAccumulator(0.3)
    g1, g2 = [0, 0, 10, 10], [5, 0, 15, 10]
    h1, h2 = [0, 0, 10, 10], [-6, 0, 5, 10]
    iou = iou_matrix(np.array([g1, g2]), np.array([h1, h2]))
    assert iou[0, 1] >= 0.3 and iou[1, 0] >= 0.3 and iou[1, 1] == 0.0 and iou[0, 1] + iou[1, 0] < 1.0
    acc.update([1, 2], np.array([g1, g2]), [10, 20], np.array([h1, h2]))
    summary = acc.summary()
    assert (summary.tp, summary.fp, summary.fn) == (2, 0, 0)


def test_ratios_without_denominator_are_nan() -> None:
    summary = run([frame({}, {})])
    assert math.isnan(summary["mota"]) and math.isnan(summary["motp"]) and math.isnan(summary["precision"])


def test_rejects_duplicate_ids_in_a_frame() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        MotAccumulator().update([1, 1], np.array([A, B]), [], np.zeros((0, 4)))


def test_iou_matrix_known_values() -> None:
    iou = iou_matrix(np.array([A]), np.array([A, A_TALL, B]))
    assert iou.shape == (1, 3) and iou[0].tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_mot_csv_round_trip(tmp_path: Path) -> None:
    rows = [MotRow(3, 2, (10.0, 20.0, 40.5, 100.0), 1.0, 1, 0.75), MotRow(1, 7, (0.0, 0.0, 5.0, 5.0), 0.0, 3, 1.0)]
    path = tmp_path / "gt.txt"
    write_mot_csv(path, rows)
    assert path.read_text().splitlines()[0] == "1,7,0.0,0.0,5.0,5.0,0,3,1.00"
    back = read_mot_csv(path)
    assert [(r.frame, r.track_id, r.cls) for r in back] == [(1, 7, 3), (3, 2, 1)]
    assert back[1].xyxy == pytest.approx((10.0, 20.0, 40.5, 100.0)) and back[1].visibility == 0.75
