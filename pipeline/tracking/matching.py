"""Association helpers for the tracker: class groups, cross-class suppression and IoU assignment.

``class_groups`` turns detector class ids into association groups: classes listed together
(by name, e.g. car/truck/bus) form one group, every other class is its own group, so a person
detection can never continue a car track while a car that the detector calls a truck in one frame
keeps its track. ``suppress_confusable`` is the matching step *within* one frame: a detector with
per-class NMS may box one vehicle twice, as car and as truck; boxes of one group that overlap strongly
are one object, and only the higher-scoring box is kept. ``buffered`` grows boxes for the buffered IoU
used with tracks that have no velocity estimate yet. ``assign`` solves the one-to-one IoU assignment
(Hungarian, via SciPy) and drops pairs below a minimum IoU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.core import Detections, box_iou

logger = logging.getLogger(__name__)


def class_groups(
    class_id: np.ndarray, class_names: Sequence[str], groups: Sequence[Sequence[str]]
) -> np.ndarray:
    """Association group per row: the index of the first group naming the class, else a unique key.

    Group keys are ``-(1 + group index)`` for the named groups and the class id itself (>= 0)
    otherwise, so the two never collide. Without ``class_names`` only class ids are compared.
    """
    class_id = np.asarray(class_id, dtype=np.int64)
    out = class_id.copy()
    if not len(class_names) or not groups:
        return out
    lookup: dict[int, int] = {}
    for g, names in enumerate(groups):
        for name in names:
            if name in class_names:
                lookup.setdefault(class_names.index(name), -(1 + g))
    for i, cid in enumerate(class_id):
        out[i] = lookup.get(int(cid), int(cid))
    return out


def suppress_confusable(dets: Detections, groups: Sequence[Sequence[str]], min_iou: float) -> np.ndarray:
    """Rows of ``dets`` to keep after suppression across confusable classes, in their original order.

    Within each named group of ``groups`` (e.g. car/truck/bus) boxes are taken by descending confidence
    and a box is dropped when its IoU with a box already kept is at least ``min_iou``: the detector saw
    one object and hedged on its class. Rows whose class is in no group (persons, by default) are never
    dropped and never drop anything, so a rider and the bicycle under him stay two objects. Ties in
    confidence keep the earlier row. Returns an int64 array of row indices.
    """
    rows = np.arange(len(dets), dtype=np.int64)
    if len(dets) < 2 or not groups:
        return rows
    keys = class_groups(dets.class_id, dets.class_names, groups)
    drop = np.zeros(len(dets), dtype=bool)
    for key in np.unique(keys[keys < 0]):
        members = rows[keys == key]
        if len(members) < 2:
            continue
        order = members[np.argsort(-dets.confidence[members], kind="stable")]
        iou = box_iou(dets.xyxy[order], dets.xyxy[order])
        for i in range(len(order)):
            if drop[order[i]]:
                continue
            later = np.arange(i + 1, len(order))
            drop[order[later[iou[i, later] >= min_iou]]] = True
    return rows[~drop]


def buffered(xyxy: np.ndarray, scale: float) -> np.ndarray:
    """Boxes grown by ``scale`` × their width/height on every side (the "buffered IoU" of C-BIoU,
    Yang et al., WACV 2023): boxes that moved further than their own size between two frames still
    overlap, which plain IoU misses at low frame rates."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    pad = np.concatenate([wh, wh], axis=1) * scale * np.array([-1, -1, 1, 1])
    return xyxy + pad


def assign(iou: np.ndarray, min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Maximum-total-IoU one-to-one matching of rows to columns, keeping pairs with IoU >= ``min_iou``.

    Returns ``(matches, unmatched_rows, unmatched_cols)``; matches are ``(row, col)`` pairs sorted by row.
    Entries that must never match (other class group) should be set to 0 by the caller.
    """
    n_rows, n_cols = iou.shape
    if n_rows == 0 or n_cols == 0:
        return [], list(range(n_rows)), list(range(n_cols))
    # pairs below the floor are made worthless *before* solving, so they cannot displace a valid pair
    gated = np.where(iou >= min_iou, iou, 0.0)
    rows, cols = linear_sum_assignment(gated, maximize=True)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if gated[r, c] > 0]
    matched_rows = {r for r, _ in matches}
    matched_cols = {c for _, c in matches}
    return (
        sorted(matches),
        [r for r in range(n_rows) if r not in matched_rows],
        [c for c in range(n_cols) if c not in matched_cols],
    )
