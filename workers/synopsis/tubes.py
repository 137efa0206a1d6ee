"""Tubes: each selected track as a sequence of boxes at the synopsis frame rate, grouped and time-lapsed.

A :class:`Tube` is what the arrangement moves and the renderer draws: for each of its synopsis frames
the source time shown (POSIX seconds) and the object's box in output pixels. Boxes come from the track
path (one box per *analysed* frame, 5 fps by default) linearly interpolated to the synopsis frame
times and scaled from the analysed frame's size to the output size.

Tubes of objects that were together in the original (:func:`group_paths`) form a :class:`Group`
that is shifted as one. A group longer than the synopsis is time-lapsed: it plays at ``speed > 1`` so
it fits; each of its frames shows the source frame nearest ``group start + k · speed / fps``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pipeline.config.synopsis import ArrangeConfig
from workers.synopsis.sources import TrackPath

log = logging.getLogger(__name__)

_EPS = 1e-6


@dataclass
class Tube:
    """One object in the synopsis."""

    index: int
    """Position in original order (start time, then track ID)."""
    path: TrackPath
    group: int
    offset: int
    """Synopsis frames from the group's first frame to this tube's first frame."""
    times: np.ndarray
    """POSIX source time shown at each of the tube's synopsis frames."""
    boxes: np.ndarray
    """``(frames, 4)`` boxes in output pixels."""
    speed: float

    @property
    def frames(self) -> int:
        return len(self.times)

    def areas(self) -> np.ndarray:
        return np.clip(self.boxes[:, 2] - self.boxes[:, 0], 0, None) * np.clip(self.boxes[:, 3] - self.boxes[:, 1], 0, None)


@dataclass
class Group:
    """Tubes shifted together; ``frames`` long in the synopsis, ``speed`` × real time."""

    index: int
    tubes: list[int]
    start_s: float
    end_s: float
    speed: float
    frames: int
    original_start: float = field(default=0.0)


class _Union:
    def __init__(self, paths: list[TrackPath]) -> None:
        self.parent = list(range(len(paths)))
        self.span = [(p.start_s, p.end_s) for p in paths]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def merge(self, i: int, j: int, max_span_s: float) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b:
            return False
        start = min(self.span[a][0], self.span[b][0])
        end = max(self.span[a][1], self.span[b][1])
        if end - start > max_span_s:
            return False
        self.parent[b] = a
        self.span[a] = (start, end)
        return True


def together_s(a: TrackPath, b: TrackPath, distance: float) -> float:
    """Seconds during which the boxes of ``a`` and ``b`` were within ``distance`` mean box widths."""
    lo, hi = max(a.start_s, b.start_s), min(a.end_s, b.end_s)
    if hi < lo:
        return 0.0
    sel = (a.times >= lo) & (a.times <= hi)
    times = a.times[sel]
    if len(times) == 0:
        return 0.0
    box_a = a.boxes[sel]
    box_b = np.stack([np.interp(times, b.times, b.boxes[:, c]) for c in range(4)], axis=1)
    gap_x = np.maximum(0.0, np.maximum(box_b[:, 0] - box_a[:, 2], box_a[:, 0] - box_b[:, 2]))
    gap_y = np.maximum(0.0, np.maximum(box_b[:, 1] - box_a[:, 3], box_a[:, 1] - box_b[:, 3]))
    width = 0.5 * ((box_a[:, 2] - box_a[:, 0]) + (box_b[:, 2] - box_b[:, 0]))
    close = np.hypot(gap_x, gap_y) <= distance * np.maximum(width, 1.0)
    step = float(np.median(np.diff(a.times))) if len(a.times) > 1 else 0.2
    return float(close.sum()) * min(max(step, 0.0), 1.0)


def group_paths(paths: list[TrackPath], settings: ArrangeConfig, max_span_s: float | None = None) -> list[list[int]]:
    """Indices of ``paths`` grouped by interaction (each group sorted); singletons when grouping is off.

    A merge that would make a group span more than ``max_group_s`` (or ``max_span_s``, the synopsis
    length: a longer group would have to be time-lapsed) is refused, so chains of passers-by do not
    glue a busy period together.
    """
    if not settings.group_interacting or len(paths) < 2:
        return [[i] for i in range(len(paths))]
    order = sorted(range(len(paths)), key=lambda i: paths[i].start_s)
    pairs: list[tuple[float, int, int]] = []
    for pos, i in enumerate(order):
        for j in order[pos + 1:]:
            if paths[j].start_s > paths[i].end_s:
                break
            together = together_s(paths[i], paths[j], settings.interaction_distance)
            if together >= settings.interaction_min_s and together > 0:
                pairs.append((together, min(i, j), max(i, j)))
    union = _Union(paths)
    limit = settings.max_group_s if max_span_s is None else min(settings.max_group_s, max_span_s)
    for _, i, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        union.merge(i, j, limit)
    groups: dict[int, list[int]] = {}
    for i in range(len(paths)):
        groups.setdefault(union.find(i), []).append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (min(paths[i].start_s for i in g), g[0]))


def motion_rate(path: TrackPath) -> float:
    """How fast the object moves: 90th percentile of its centre's displacement over 1-s steps, in median box
    heights per second (a parked car ≈ 0.01, a person walking ≈ 0.5-1)."""
    if path.end_s <= path.start_s or len(path.times) < 2:
        return 0.0
    times = np.append(np.arange(path.start_s, path.end_s, 1.0), path.end_s)
    times = times[np.concatenate([[True], np.diff(times) > 1e-3])]
    if len(times) < 2:
        return 0.0
    cx = np.interp(times, path.times, 0.5 * (path.boxes[:, 0] + path.boxes[:, 2]))
    cy = np.interp(times, path.times, 0.5 * (path.boxes[:, 1] + path.boxes[:, 3]))
    height = float(np.median(path.boxes[:, 3] - path.boxes[:, 1]))
    rate = np.hypot(np.diff(cx), np.diff(cy)) / np.diff(times) / max(height, 1.0)
    return float(np.percentile(rate, 90))


def _boxes_at(path: TrackPath, times: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    cols = [np.interp(times, path.times, path.boxes[:, c]) for c in range(4)]
    boxes = np.stack(cols, axis=1)
    boxes[:, [0, 2]] *= scale_x
    boxes[:, [1, 3]] *= scale_y
    return boxes


def _make_group(
    number: int, members: list[int], paths: Mapping[int, TrackPath], *, fps: float, size: tuple[int, int],
    length_frames: int, factor: float,
) -> tuple[Group, list[Tube]]:
    """Group ``number`` of ``members`` and its tubes, played at ``factor`` × the speed that fits it in the synopsis."""
    width, height = size
    start = min(paths[i].start_s for i in members)
    end = max(paths[i].end_s for i in members)
    span_frames = (end - start) * fps
    speed = 1.0
    if math.floor(span_frames + _EPS) + 1 > length_frames:
        speed = span_frames / max(1, length_frames - 1)
    speed *= factor
    frames = min(length_frames, math.floor(span_frames / speed + _EPS) + 1)
    group = Group(number, list(members), start, end, speed, frames, original_start=start)
    tubes = []
    for i in members:
        path = paths[i]
        first = min(frames - 1, max(0, math.ceil((path.start_s - start) * fps / speed - _EPS)))
        last = min(frames - 1, max(first, math.floor((path.end_s - start) * fps / speed + _EPS)))
        times = np.clip(start + np.arange(first, last + 1) * speed / fps, path.start_s, path.end_s)
        scale_x, scale_y = width / path.frame_width, height / path.frame_height
        tubes.append(Tube(i, path, number, first, times, _boxes_at(path, times, scale_x, scale_y), speed))
    return group, tubes


def build_tubes(
    paths: list[TrackPath], *, fps: float, size: tuple[int, int], length_frames: int, settings: ArrangeConfig
) -> tuple[list[Tube], list[Group]]:
    """Tubes (one per path, same order) and their groups, for a synopsis of ``length_frames`` frames.

    Each group plays at the slowest speed that fits it (1, or the time-lapse of a group longer than the
    synopsis); the arrangement may speed groups up further (:func:`speed_variant`)."""
    tubes: list[Tube | None] = [None] * len(paths)
    groups: list[Group] = []
    by_index = dict(enumerate(paths))
    for number, members in enumerate(group_paths(paths, settings, (length_frames - 1) / fps)):
        group, made = _make_group(number, members, by_index, fps=fps, size=size, length_frames=length_frames,
                                  factor=1.0)
        groups.append(group)
        for tube in made:
            tubes[tube.index] = tube
    built = [t for t in tubes if t is not None]
    lapsed = sum(1 for g in groups if g.speed > 1.0)
    log.debug("%d tube(s) in %d group(s), %d time-lapsed", len(built), len(groups), lapsed)
    return built, groups


def speed_variant(
    group: Group, tubes: list[Tube], factor: float, *, fps: float, size: tuple[int, int], length_frames: int
) -> tuple[Group, list[Tube]]:
    """``group`` (built by :func:`build_tubes`, whose tubes are ``tubes``) played ``factor`` × faster.

    The product's one way of shortening an object: time-lapse. The object is still shown whole, once, and
    every synopsis frame maps exactly to an original time (``speed`` is in the index)."""
    paths = {i: tubes[i].path for i in group.tubes}
    return _make_group(group.index, group.tubes, paths, fps=fps, size=size, length_frames=length_frames,
                       factor=factor)
