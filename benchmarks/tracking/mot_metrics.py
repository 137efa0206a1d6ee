"""CLEAR MOT and identity (IDF1) metrics for box trackers, with IoU >= 0.5 matching.

Definitions followed:

* CLEAR MOT (Bernardin & Stiefelhagen, 2008). Per frame, a ground-truth object keeps the hypothesis it
  was matched to in the previous frame if that pair is still valid (IoU >= threshold, same class);
  the remaining objects and hypotheses are matched by the Hungarian algorithm maximising total IoU over
  valid pairs. A match whose hypothesis ID differs from the last hypothesis matched to that object (in
  any earlier frame) is an identity switch. ``MOTA = 1 - (FN + FP + IDSW) / GT``; ``MOTP`` here is the
  mean IoU of matched pairs (higher is better; py-motmetrics reports ``1 - IoU``).
* Identity measures (Ristani et al., ECCV 2016 workshops). Each ground-truth trajectory is matched to
  at most one hypothesis trajectory, one-to-one, maximising the number of frames where the two overlap
  (IoU >= threshold); ``IDTP`` is that number, ``IDFN = GT - IDTP``, ``IDFP = HYP - IDTP``,
  ``IDF1 = 2 IDTP / (GT + HYP)``.
* Ignored ground truth (MOTChallenge ``conf == 0``: crowds, objects mostly hidden or cut off). As in
  the MOT17 devkit, hypotheses matched to an ignored box in a frame are removed from that frame, then
  the ignored boxes are removed; neither counts as a hit, a miss or a false positive.

``MotAccumulator`` collects frames; ``summary()`` returns a :class:`MotSummary`. ``read_mot_csv``
reads ``frame,id,x,y,w,h,conf,class,visibility`` files. No external metrics package is used.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, shape (len(a), len(b)), float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _hungarian(score: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one pairs maximising total ``score`` over ``valid`` entries only."""
    if not score.size or not valid.any():
        return []
    # each valid pair earns a bonus larger than any IoU total, so the most matches win first,
    # then the highest total IoU among assignments with that many matches
    bonus = float(min(score.shape) + 1)
    rows, cols = linear_sum_assignment(np.where(valid, score + bonus, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if valid[r, c]]


@dataclass(frozen=True)
class MotSummary:
    """Totals over all frames; ratios are NaN where their denominator is zero."""

    frames: int
    gt: int
    hyp: int
    tp: int
    fp: int
    fn: int
    idsw: int
    mota: float
    motp: float
    precision: float
    recall: float
    idtp: int
    idfp: int
    idfn: int
    idf1: float
    idp: float
    idr: float
    gt_ids: int
    hyp_ids: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


class MotAccumulator:
    """Feeds frames one at a time; see the module docstring for the rules."""

    def __init__(self, iou_threshold: float = 0.5) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            msg = f"iou_threshold must be in (0, 1], got {iou_threshold!r}"
            raise ValueError(msg)
        self.iou_threshold = iou_threshold
        self.frames = 0
        self.tp = self.fp = self.fn = self.idsw = 0
        self.iou_sum = 0.0
        self._last_match: dict[int, int] = {}
        self._gt_frames: dict[int, int] = defaultdict(int)
        self._hyp_frames: dict[int, int] = defaultdict(int)
        self._pair_frames: dict[tuple[int, int], int] = defaultdict(int)

    def update(
        self,
        gt_ids: Sequence[int] | np.ndarray,
        gt_boxes: np.ndarray,
        hyp_ids: Sequence[int] | np.ndarray,
        hyp_boxes: np.ndarray,
        *,
        gt_classes: Sequence[int] | np.ndarray | None = None,
        hyp_classes: Sequence[int] | np.ndarray | None = None,
        gt_ignore: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        """Add one frame: xyxy boxes, integer IDs, optional classes (pairs of different classes never
        match) and an optional ignore flag per ground-truth box."""
        gt_ids = np.asarray(gt_ids, dtype=np.int64).reshape(-1)
        hyp_ids = np.asarray(hyp_ids, dtype=np.int64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        hyp_boxes = np.asarray(hyp_boxes, dtype=np.float64).reshape(-1, 4)
        if len(gt_ids) != len(gt_boxes) or len(hyp_ids) != len(hyp_boxes):
            msg = "ids and boxes must have the same length"
            raise ValueError(msg)
        for name, ids in (("ground-truth", gt_ids), ("hypothesis", hyp_ids)):
            if len(set(ids.tolist())) != len(ids):
                msg = f"duplicate {name} IDs in one frame: {sorted(ids.tolist())}"
                raise ValueError(msg)
        gt_cls = np.zeros(len(gt_ids), np.int64) if gt_classes is None else np.asarray(gt_classes, np.int64)
        hyp_cls = np.zeros(len(hyp_ids), np.int64) if hyp_classes is None else np.asarray(hyp_classes, np.int64)
        ignore = np.zeros(len(gt_ids), bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
        iou = iou_matrix(gt_boxes, hyp_boxes)
        valid = (iou >= self.iou_threshold) & (gt_cls[:, None] == hyp_cls[None, :])

        if ignore.any():
            drop_hyp = {c for r, c in _hungarian(iou, valid) if ignore[r]}
            keep_gt = ~ignore
            keep_hyp = np.array([j not in drop_hyp for j in range(len(hyp_ids))], dtype=bool)
            gt_ids, hyp_ids = gt_ids[keep_gt], hyp_ids[keep_hyp]
            iou, valid = iou[keep_gt][:, keep_hyp], valid[keep_gt][:, keep_hyp]
        self._clear_frame(gt_ids, hyp_ids, iou, valid)
        self._identity_frame(gt_ids, hyp_ids, valid)
        self.frames += 1

    def _clear_frame(self, gt_ids: np.ndarray, hyp_ids: np.ndarray, iou: np.ndarray, valid: np.ndarray) -> None:
        hyp_col = {int(h): j for j, h in enumerate(hyp_ids)}
        matches: list[tuple[int, int]] = []
        for i, g in enumerate(gt_ids):
            last = self._last_match.get(int(g))
            j = hyp_col.get(last) if last is not None else None
            if j is not None and valid[i, j]:
                matches.append((i, j))
        kept_rows = {i for i, _ in matches}
        kept_cols = {j for _, j in matches}
        rows = np.array([i for i in range(len(gt_ids)) if i not in kept_rows], dtype=np.int64)
        cols = np.array([j for j in range(len(hyp_ids)) if j not in kept_cols], dtype=np.int64)
        if len(rows) and len(cols):
            sub = _hungarian(iou[np.ix_(rows, cols)], valid[np.ix_(rows, cols)])
            matches += [(int(rows[r]), int(cols[c])) for r, c in sub]
        for i, j in matches:
            g, h = int(gt_ids[i]), int(hyp_ids[j])
            if g in self._last_match and self._last_match[g] != h:
                self.idsw += 1
            self._last_match[g] = h
            self.iou_sum += float(iou[i, j])
        self.tp += len(matches)
        self.fn += len(gt_ids) - len(matches)
        self.fp += len(hyp_ids) - len(matches)

    def _identity_frame(self, gt_ids: np.ndarray, hyp_ids: np.ndarray, valid: np.ndarray) -> None:
        for g in gt_ids:
            self._gt_frames[int(g)] += 1
        for h in hyp_ids:
            self._hyp_frames[int(h)] += 1
        for i, j in zip(*np.nonzero(valid), strict=True):
            self._pair_frames[(int(gt_ids[i]), int(hyp_ids[j]))] += 1

    def _idtp(self) -> int:
        if not self._pair_frames:
            return 0
        gts = sorted(self._gt_frames)
        hyps = sorted(self._hyp_frames)
        gi = {g: k for k, g in enumerate(gts)}
        hi = {h: k for k, h in enumerate(hyps)}
        overlap = np.zeros((len(gts), len(hyps)))
        for (g, h), n in self._pair_frames.items():
            overlap[gi[g], hi[h]] = n
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        return int(overlap[rows, cols].sum())

    def summary(self) -> MotSummary:
        gt = self.tp + self.fn
        hyp = self.tp + self.fp
        idtp = self._idtp()
        return MotSummary(
            frames=self.frames,
            gt=gt,
            hyp=hyp,
            tp=self.tp,
            fp=self.fp,
            fn=self.fn,
            idsw=self.idsw,
            mota=1.0 - _ratio(self.fn + self.fp + self.idsw, gt) if gt else float("nan"),
            motp=_ratio(self.iou_sum, self.tp),
            precision=_ratio(self.tp, hyp),
            recall=_ratio(self.tp, gt),
            idtp=idtp,
            idfp=hyp - idtp,
            idfn=gt - idtp,
            idf1=_ratio(2 * idtp, gt + hyp),
            idp=_ratio(idtp, hyp),
            idr=_ratio(idtp, gt),
            gt_ids=len(self._gt_frames),
            hyp_ids=len(self._hyp_frames),
        )


@dataclass(frozen=True)
class MotRow:
    """One line of a MOTChallenge file; the box is converted to xyxy."""

    frame: int
    track_id: int
    xyxy: tuple[float, float, float, float]
    conf: float
    cls: int
    visibility: float


def read_mot_csv(path: Path) -> list[MotRow]:
    """Rows of ``frame,id,x,y,w,h,conf,class,visibility`` (missing trailing columns default to 1)."""
    rows = []
    with Path(path).open(newline="") as handle:
        for line_no, fields in enumerate(csv.reader(handle), start=1):
            if not fields or fields[0].lstrip().startswith("#"):
                continue
            if len(fields) < 6:
                msg = f"{path}:{line_no}: expected at least 6 columns, got {len(fields)}"
                raise ValueError(msg)
            values = [float(v) for v in fields[:9]] + [1.0] * (9 - min(len(fields), 9))
            frame, tid, x, y, w, h, conf, cls, vis = values
            rows.append(MotRow(int(frame), int(tid), (x, y, x + w, y + h), conf, int(cls), vis))
    return rows


def write_mot_csv(path: Path, rows: Sequence[MotRow]) -> None:
    """Write rows sorted by frame then ID, boxes as x,y,w,h rounded to 0.1 px."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        for r in sorted(rows, key=lambda r: (r.frame, r.track_id)):
            x1, y1, x2, y2 = r.xyxy
            writer.writerow([r.frame, r.track_id, f"{x1:.1f}", f"{y1:.1f}", f"{x2 - x1:.1f}", f"{y2 - y1:.1f}",
                             f"{r.conf:g}", r.cls, f"{r.visibility:.2f}"])
