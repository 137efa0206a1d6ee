"""Multi-object tracking: the per-camera ByteTrack-style tracker and its building blocks.

``ByteTracker.update(detections, timestamp) -> Detections`` gives each confirmed object a stable
``tracker_id``; ``removed`` / ``close_all()`` report tracks that ended. See ``docs/tracking.md``.
"""

from __future__ import annotations

from pipeline.tracking.kalman import BoxKalman, MotionNoise
from pipeline.tracking.tracker import ByteTracker, ClosedTrack, TrackerConfig, TrackState

__all__ = ["BoxKalman", "ByteTracker", "ClosedTrack", "MotionNoise", "TrackState", "TrackerConfig"]
