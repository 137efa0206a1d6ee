"""ByteTrack-style multi-object tracker over :class:`pipeline.core.Detections`, timed in seconds.

One ``ByteTracker`` follows the objects of one camera. Each ``update(detections, timestamp)``:

1. predicts every track to ``timestamp`` with its constant-velocity Kalman filter (any time step);
2. matches **high-score** detections (``confidence >= track_thresh``) to the confirmed tracks, tracked
   and lost, by IoU with the predicted box (Hungarian, ``IoU >= match_thresh``);
3. matches **low-score** detections (``low_thresh <= confidence < track_thresh``) to the tracked
   tracks still unmatched (``IoU >= low_match_thresh``): a partly occluded or blurred object keeps its
   track, but a low score never starts one (ByteTrack's key idea; Zhang et al., ECCV 2022);
4. tracks still unmatched become *lost*; tentative tracks are matched to the remaining high-score
   detections (``IoU >= tentative_match_thresh``, computed on boxes grown by ``tentative_buffer`` of
   their size on each side: a new track has no velocity yet, and at 5 fps a walker or a car moves by
   more than its own width between frames) and confirmed after ``min_hits`` hits; an unmatched
   tentative track is dropped;
5. remaining high-score detections with ``confidence >= new_track_thresh`` start tentative tracks;
6. tracks not seen for more than ``track_buffer_s`` seconds are removed and reported in ``removed``.

Association is class-aware: a detection only matches a track of its association group (see
:func:`pipeline.tracking.matching.class_groups`; by default car, truck and bus form one "vehicle"
group). IDs come from the injected ``id_source`` and are drawn only when a track is confirmed, so no
ID is wasted on a one-frame false positive. ``update(None, t)`` marks a frame that was not analysed:
the tracks are predicted and aged, none is marked lost for lack of a match.

The output is a new container holding the confirmed tracks matched in this frame: the *detection's*
box, confidence and class, ``tracker_id`` (>= 1) and ``data["detection_index"]``, the row of the input
it came from. The input is never modified.

``export_state()`` returns the tracker's moving parts (clock, and per track its Kalman state, counts and
class votes) as plain numbers in a :class:`TrackerState`; ``restore_state()`` puts them back into a tracker
built with the same configuration, so a camera's tracking can continue in another process. Turning that
into bytes (and refusing bad bytes) is the caller's job: nothing here reads or writes a file.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from pipeline.core import Detections, box_iou
from pipeline.tracking.kalman import BoxKalman, MotionNoise
from pipeline.tracking.matching import assign, buffered, class_groups

logger = logging.getLogger(__name__)

DEFAULT_CLASS_GROUPS: tuple[tuple[str, ...], ...] = (("car", "truck", "bus"),)


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of the tracker; IoU floors are *minimum IoU* (ByteTrack's ``match_thresh=0.8`` is
    a cost ``1 - IoU``, i.e. ``match_thresh=0.2`` here). All durations are in seconds.

    Defaults suit the NanoDet COCO detector at a 5 fps analysis rate (see ``docs/tracking.md``): its
    scores run lower than YOLOX's, for which ByteTrack's 0.5/0.6/0.1 were chosen, its boxes below 0.3
    are mostly clutter, and objects move further between frames than at 30 fps, hence the lower
    first-stage IoU floor."""

    track_thresh: float = 0.45
    low_thresh: float = 0.3
    new_track_thresh: float = 0.5
    match_thresh: float = 0.1
    low_match_thresh: float = 0.5
    tentative_match_thresh: float = 0.3
    tentative_buffer: float = 0.5
    track_buffer_s: float = 2.0
    min_hits: int = 2
    class_groups: tuple[tuple[str, ...], ...] = DEFAULT_CLASS_GROUPS
    fuse_score: bool = False
    noise: MotionNoise = field(default_factory=MotionNoise)

    def __post_init__(self) -> None:
        for name in ("track_thresh", "low_thresh", "new_track_thresh", "match_thresh", "low_match_thresh",
                     "tentative_match_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"{name} must be within [0, 1], got {value!r}"
                raise ValueError(msg)
        if self.low_thresh > self.track_thresh:
            msg = f"low_thresh ({self.low_thresh}) must not exceed track_thresh ({self.track_thresh})"
            raise ValueError(msg)
        if self.new_track_thresh < self.track_thresh:
            msg = f"new_track_thresh ({self.new_track_thresh}) must be >= track_thresh ({self.track_thresh})"
            raise ValueError(msg)
        if not 0.0 <= self.tentative_buffer <= 5.0:
            msg = f"tentative_buffer must be within [0, 5], got {self.tentative_buffer!r}"
            raise ValueError(msg)
        if not (math.isfinite(self.track_buffer_s) and self.track_buffer_s >= 0):
            msg = f"track_buffer_s must be a finite number >= 0, got {self.track_buffer_s!r}"
            raise ValueError(msg)
        if self.min_hits < 1:
            msg = f"min_hits must be >= 1, got {self.min_hits!r}"
            raise ValueError(msg)
        groups = tuple(tuple(str(n) for n in g) for g in self.class_groups)
        object.__setattr__(self, "class_groups", groups)


@dataclass(frozen=True)
class ClosedTrack:
    """A confirmed track that ended: its ID, majority class, first/last matched time and hit count.

    ``reason`` is ``"lost"`` (unseen for longer than the buffer) or ``"closed"`` (``close_all``)."""

    track_id: int
    class_id: int
    first_timestamp: float
    last_timestamp: float
    hits: int
    reason: str


class TrackState(Enum):
    TENTATIVE = "tentative"
    TRACKED = "tracked"
    LOST = "lost"


_STATE_DIM = 8  # BoxKalman's state: (cx, cy, w, h) and their velocities


@dataclass(frozen=True)
class TrackRecordState:
    """One track's moving parts as plain numbers (see :meth:`ByteTracker.export_state`).

    ``mean`` is the Kalman state (8 values), ``covariance`` its 8×8 covariance row by row (64 values)."""

    mean: tuple[float, ...]
    covariance: tuple[float, ...]
    group: int
    track_id: int | None
    state: str
    first_timestamp: float
    last_timestamp: float
    hits: int
    class_votes: tuple[tuple[int, float], ...]

    def check(self) -> None:
        """Raise ValueError unless the numbers can be a track of this tracker."""
        if len(self.mean) != _STATE_DIM or len(self.covariance) != _STATE_DIM * _STATE_DIM:
            msg = f"a track needs {_STATE_DIM} state values and {_STATE_DIM**2} covariance values"
            raise ValueError(msg)
        numbers = (*self.mean, *self.covariance, self.first_timestamp, self.last_timestamp,
                   *(score for _, score in self.class_votes))
        if not all(math.isfinite(v) for v in numbers):
            msg = "a track's numbers must be finite"
            raise ValueError(msg)
        if self.state not in {s.value for s in TrackState} or self.hits < 1 or not self.class_votes:
            msg = f"invalid track (state {self.state!r}, {self.hits} hits, {len(self.class_votes)} class votes)"
            raise ValueError(msg)
        if (self.track_id is None) != (self.state == TrackState.TENTATIVE.value) or (
                self.track_id is not None and self.track_id < 1):
            msg = f"track ID {self.track_id!r} does not fit state {self.state!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class TrackerState:
    """The tracker's moving parts: the time of the last update and every live track, in order."""

    time: float | None
    tracks: tuple[TrackRecordState, ...]


class _Track:
    """Mutable per-object state, private to the tracker."""

    def __init__(self, box: np.ndarray, group: int, class_id: int, score: float, timestamp: float,
                 noise: MotionNoise) -> None:
        self.kalman = BoxKalman(box, noise)
        self.group = group
        self.track_id: int | None = None
        self.state = TrackState.TENTATIVE
        self.first_timestamp = timestamp
        self.last_timestamp = timestamp
        self.hits = 1
        self.class_votes: dict[int, float] = {class_id: score}

    def export(self) -> TrackRecordState:
        return TrackRecordState(
            mean=tuple(float(v) for v in self.kalman.mean),
            covariance=tuple(float(v) for v in self.kalman.covariance.reshape(-1)),
            group=self.group, track_id=self.track_id, state=self.state.value,
            first_timestamp=self.first_timestamp, last_timestamp=self.last_timestamp, hits=self.hits,
            class_votes=tuple(self.class_votes.items()),
        )

    @classmethod
    def restore(cls, saved: TrackRecordState, noise: MotionNoise) -> _Track:
        saved.check()
        (first_class, _), *_ = saved.class_votes
        track = cls(np.zeros(4), saved.group, first_class, 0.0, saved.first_timestamp, noise)
        track.kalman.mean = np.array(saved.mean, dtype=np.float64)
        track.kalman.covariance = np.array(saved.covariance, dtype=np.float64).reshape(_STATE_DIM, _STATE_DIM)
        track.track_id = saved.track_id
        track.state = TrackState(saved.state)
        track.last_timestamp = saved.last_timestamp
        track.hits = saved.hits
        track.class_votes = dict(saved.class_votes)
        return track

    def hit(self, box: np.ndarray, class_id: int, score: float, timestamp: float) -> None:
        self.kalman.update(box)
        self.last_timestamp = timestamp
        self.hits += 1
        self.class_votes[class_id] = self.class_votes.get(class_id, 0.0) + score
        if self.state is TrackState.LOST:
            self.state = TrackState.TRACKED

    def closed(self, reason: str) -> ClosedTrack:
        assert self.track_id is not None
        class_id = max(self.class_votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        return ClosedTrack(self.track_id, class_id, self.first_timestamp, self.last_timestamp, self.hits, reason)


class ByteTracker:
    """Per-camera tracker; see the module docstring. Not thread-safe: one caller per instance."""

    def __init__(
        self,
        *,
        track_thresh: float = 0.45,
        low_thresh: float = 0.3,
        new_track_thresh: float = 0.5,
        match_thresh: float = 0.1,
        low_match_thresh: float = 0.5,
        tentative_match_thresh: float = 0.3,
        tentative_buffer: float = 0.5,
        track_buffer_s: float = 2.0,
        min_hits: int = 2,
        class_groups: Sequence[Sequence[str]] = DEFAULT_CLASS_GROUPS,
        fuse_score: bool = False,
        noise: MotionNoise | None = None,
        id_source: Callable[[], int] | None = None,
    ) -> None:
        self.config = TrackerConfig(
            track_thresh=track_thresh,
            low_thresh=low_thresh,
            new_track_thresh=new_track_thresh,
            match_thresh=match_thresh,
            low_match_thresh=low_match_thresh,
            tentative_match_thresh=tentative_match_thresh,
            tentative_buffer=tentative_buffer,
            track_buffer_s=track_buffer_s,
            min_hits=min_hits,
            class_groups=tuple(tuple(g) for g in class_groups),
            fuse_score=fuse_score,
            noise=noise or MotionNoise(),
        )
        self._next_id: Callable[[], int] = id_source or itertools.count(1).__next__
        self._tracks: list[_Track] = []
        self._time: float | None = None
        self.removed: list[ClosedTrack] = []

    @classmethod
    def from_config(cls, config: TrackerConfig, id_source: Callable[[], int] | None = None) -> ByteTracker:
        fields = {k: getattr(config, k) for k in config.__dataclass_fields__}
        return cls(**fields, id_source=id_source)

    # -- public API ---------------------------------------------------------------------------------
    @property
    def active_ids(self) -> list[int]:
        """IDs of confirmed tracks still alive (tracked or lost), in creation order."""
        return [t.track_id for t in self._tracks if t.track_id is not None]

    def update(self, detections: Detections | None, timestamp: float) -> Detections:
        """Advance to ``timestamp`` (seconds) with this frame's detections, or ``None`` for a skipped frame."""
        self.removed = []
        self._advance(timestamp)
        if detections is None:
            self._expire(timestamp)
            return Detections.empty().with_data(detection_index=np.zeros(0, dtype=np.int64))
        assigned = self._associate(detections, timestamp)
        self._expire(timestamp)
        return self._output(detections, assigned)

    def close_all(self) -> list[ClosedTrack]:
        """End every confirmed track (shutdown, partition rebalance); returns them, also in ``removed``."""
        self.removed = [t.closed("closed") for t in self._tracks if t.track_id is not None]
        self._tracks = []
        return list(self.removed)

    def reset(self) -> None:
        """Forget all tracks and the clock without reporting them. IDs already issued are never reused."""
        self._tracks = []
        self._time = None
        self.removed = []

    def export_state(self) -> TrackerState:
        """The clock and every live track as plain numbers (``removed`` is per update and not included)."""
        return TrackerState(self._time, tuple(t.export() for t in self._tracks))

    def restore_state(self, state: TrackerState) -> None:
        """Continue from ``state`` (from :meth:`export_state` of a tracker with the same configuration).

        Raises ValueError, leaving this tracker unchanged, when a track's numbers are not a valid track.
        The ID source is not part of the state: inject one that continues where the old one stopped."""
        if state.time is not None and not math.isfinite(state.time):
            msg = f"tracker time must be finite, got {state.time!r}"
            raise ValueError(msg)
        tracks = [_Track.restore(saved, self.config.noise) for saved in state.tracks]
        self._tracks = tracks
        self._time = state.time
        self.removed = []

    # -- steps --------------------------------------------------------------------------------------
    def _advance(self, timestamp: float) -> None:
        if not math.isfinite(timestamp):
            msg = f"timestamp must be finite, got {timestamp!r}"
            raise ValueError(msg)
        if self._time is not None and timestamp < self._time:
            msg = f"timestamp {timestamp} is earlier than the previous update ({self._time})"
            raise ValueError(msg)
        dt = 0.0 if self._time is None else timestamp - self._time
        self._time = timestamp
        for track in self._tracks:
            track.kalman.predict(dt, freeze_size=track.state is TrackState.LOST)

    def _expire(self, timestamp: float) -> None:
        keep = []
        for track in self._tracks:
            if timestamp - track.last_timestamp > self.config.track_buffer_s:
                if track.track_id is not None:
                    self.removed.append(track.closed("lost"))
                continue
            keep.append(track)
        self._tracks = keep

    def _iou(self, tracks: Sequence[_Track], dets: Detections, groups: np.ndarray, rows: np.ndarray,
             grow: float = 0.0, fuse: bool = False) -> np.ndarray:
        if not tracks or not len(rows):
            return np.zeros((len(tracks), len(rows)))
        predicted = np.stack([t.kalman.box for t in tracks])
        boxes = dets.xyxy[rows]
        if grow:
            predicted, boxes = buffered(predicted, grow), buffered(boxes, grow)
        iou = box_iou(predicted, boxes).astype(np.float64)
        same_group = np.array([t.group for t in tracks])[:, None] == groups[rows][None, :]
        iou = np.where(same_group, iou, 0.0)
        if fuse:
            iou = iou * dets.confidence[rows][None, :]
        return iou

    def _match(self, tracks: list[_Track], dets: Detections, groups: np.ndarray, rows: np.ndarray,
               min_iou: float, grow: float = 0.0, fuse: bool = False,
               ) -> tuple[list[tuple[_Track, int]], list[_Track], np.ndarray]:
        matches, free_tracks, free_cols = assign(self._iou(tracks, dets, groups, rows, grow, fuse), min_iou)
        pairs = [(tracks[r], int(rows[c])) for r, c in matches]
        return pairs, [tracks[r] for r in free_tracks], rows[free_cols]

    def _associate(self, dets: Detections, timestamp: float) -> dict[int, int]:
        """Run the association cascade; returns detection row → confirmed track id for this frame."""
        cfg = self.config
        groups = class_groups(dets.class_id, dets.class_names, cfg.class_groups)
        score = dets.confidence
        high = np.flatnonzero(score >= cfg.track_thresh)
        low = np.flatnonzero((score >= cfg.low_thresh) & (score < cfg.track_thresh))
        confirmed = [t for t in self._tracks if t.track_id is not None]
        tentative = [t for t in self._tracks if t.track_id is None]

        first, unmatched, high_left = self._match(confirmed, dets, groups, high, cfg.match_thresh,
                                                  fuse=cfg.fuse_score)
        still_tracked = [t for t in unmatched if t.state is TrackState.TRACKED]
        second, unmatched_tracked, _ = self._match(still_tracked, dets, groups, low, cfg.low_match_thresh)
        for track in unmatched_tracked:
            track.state = TrackState.LOST
        third, dropped, high_left = self._match(tentative, dets, groups, high_left, cfg.tentative_match_thresh,
                                                cfg.tentative_buffer)

        assigned: dict[int, int] = {}
        for track, row in (*first, *second, *third):
            track.hit(dets.xyxy[row], int(dets.class_id[row]), float(score[row]), timestamp)
            self._maybe_confirm(track)
            if track.track_id is not None:
                assigned[row] = track.track_id
        dropped_ids = {id(t) for t in dropped}
        self._tracks = [t for t in self._tracks if id(t) not in dropped_ids]
        for row in high_left:
            if score[row] < cfg.new_track_thresh:
                continue
            track = _Track(dets.xyxy[row], int(groups[row]), int(dets.class_id[row]), float(score[row]),
                           timestamp, cfg.noise)
            self._tracks.append(track)
            self._maybe_confirm(track)
            if track.track_id is not None:
                assigned[int(row)] = track.track_id
        return assigned

    def _maybe_confirm(self, track: _Track) -> None:
        if track.track_id is None and track.hits >= self.config.min_hits:
            track.track_id = int(self._next_id())
            track.state = TrackState.TRACKED
            if track.track_id < 1:
                msg = f"id_source returned {track.track_id}; track IDs must be >= 1"
                raise ValueError(msg)
            logger.debug("track %d confirmed after %d hits", track.track_id, track.hits)

    @staticmethod
    def _output(dets: Detections, assigned: dict[int, int]) -> Detections:
        rows = np.array(sorted(assigned), dtype=np.int64)
        if not len(rows):
            return dets[np.zeros(0, dtype=np.int64)].with_data(detection_index=np.zeros(0, dtype=np.int64))
        ids = np.array([assigned[int(r)] for r in rows], dtype=np.int64)
        return dets[rows].replace(tracker_id=ids).with_data(detection_index=rows)
