"""Multi-object tracking: the per-camera ByteTrack-style tracker and its building blocks.

``ByteTracker.update(detections, timestamp) -> Detections`` gives each confirmed object a stable
``tracker_id``; ``removed`` / ``close_all()`` report tracks that ended. ``suppress_confusable`` drops the
second box a detector gives one object under a confusable class (car and truck) before tracking. See
``docs/tracking.md``.
"""

from __future__ import annotations

from pipeline.tracking.kalman import BoxKalman, MotionNoise
from pipeline.tracking.matching import suppress_confusable
from pipeline.tracking.tracker import (
    ByteTracker,
    ClosedTrack,
    TrackerConfig,
    TrackerState,
    TrackRecordState,
    TrackState,
)

__all__ = ["BoxKalman", "ByteTracker", "ClosedTrack", "MotionNoise", "TrackRecordState", "TrackState", "TrackerConfig",
           "TrackerState", "suppress_confusable"]
