"""Configuration of the detect worker: batching, commit/snapshot cadence, confusable classes, tracker and crops."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section
from pipeline.config.models import check_detector_views
from pipeline.tracking.tracker import TrackerConfig as _TrackerDefaults

_TRACKER = _TrackerDefaults()  # the tracker's own defaults, tuned on the annotated benchmark

VEHICLE_AND_PERSON = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
# Classes NanoDet gives the same object under (docs/detect.md): its NMS is per class, so one vehicle can come
# out as a car box and a truck box at once (IoU 0.89-0.99 on the enrichment test video, where two different
# vehicles never overlapped beyond 0.49), and its class flips between them from frame to frame. Scooters and
# e-bikes flip between bicycle and motorcycle the same way. A person is in no group: a rider and his bicycle
# overlap strongly and are two objects.
CONFUSABLE_CLASSES = (("car", "truck", "bus"), ("bicycle", "motorcycle"))


class TrackerConfig(Section):
    """Settings passed to :class:`pipeline.tracking.ByteTracker` (see docs/tracking.md)."""

    track_thresh: float = Field(
        _TRACKER.track_thresh, title="Track threshold", description="Detections at or above this score are matched first.", gt=0, lt=1
    )
    low_thresh: float = Field(
        _TRACKER.low_thresh, title="Low threshold", description="Detections between this and track_thresh only continue tracks.",
        ge=0, lt=1,
    )
    new_track_thresh: float = Field(
        _TRACKER.new_track_thresh, title="New-track threshold", description="Minimum score for a detection to start a track.", gt=0, le=1
    )
    match_thresh: float = Field(
        _TRACKER.match_thresh, title="Match IoU", description="Minimum IoU for a first-stage match.", gt=0, le=1
    )
    low_match_thresh: float = Field(
        _TRACKER.low_match_thresh, title="Low-score match IoU", description="Minimum IoU to match a low-score detection.", gt=0, le=1
    )
    tentative_match_thresh: float = Field(
        _TRACKER.tentative_match_thresh, title="Tentative match IoU", description="Minimum IoU to match an unconfirmed track.", gt=0, le=1
    )
    track_buffer_s: float = Field(
        _TRACKER.track_buffer_s, title="Track buffer", description="Seconds a lost track is kept before it ends.", gt=0, le=120
    )
    min_hits: int = Field(_TRACKER.min_hits, title="Minimum hits", description="Matches before a track is confirmed.", ge=1, le=30)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> TrackerConfig:
        if self.low_thresh >= self.track_thresh:
            msg = "low_thresh must be below track_thresh"
            raise ValueError(msg)
        return self


class DetectConfig(Section):
    max_batch: int = Field(8, title="Max batch", description="Frames per detector batch (across cameras).", ge=1, le=64)
    max_wait_ms: int = Field(
        40, title="Max batch wait", description="Milliseconds to wait for a batch to fill.", ge=0, le=2000
    )
    decode_threads: int = Field(
        2, title="JPEG decode threads",
        description="Threads that decode a batch's frames in parallel (OpenCV releases the GIL); 0 decodes inline.",
        ge=0, le=32,
    )
    upload_threads: int = Field(
        4, title="Crop upload threads",
        description="Threads that write crops to the object store while detection goes on; announcements and "
        "other outputs still leave in order, each crop's only after its object is stored. 0 writes inline.",
        ge=0, le=64,
    )
    commit_interval_s: float = Field(
        2.0,
        title="Commit interval",
        description="Seconds between state snapshots + offset commits; a crash replays at most this much.",
        gt=0,
        le=300,
    )
    classes: tuple[str, ...] = Field(
        VEHICLE_AND_PERSON,
        title="Tracked classes",
        description="Detector classes that are tracked, cropped and summarised; others are ignored.",
        min_length=1,
    )
    min_score: float = Field(
        0.2, title="Minimum score", description="Detections below this score are discarded.", ge=0, lt=1
    )
    confusable_classes: tuple[tuple[str, ...], ...] = Field(
        CONFUSABLE_CLASSES,
        title="Confusable classes",
        description=(
            "Groups of detector classes the detector mistakes for one another. Within a group, boxes overlapping "
            "by suppress_iou are one object, a detection may continue a track of another class of the group, and "
            "a track reports the class voted over its frames. A class in no group (person) only ever matches itself."
        ),
        max_length=16,
    )
    suppress_iou: float | None = Field(
        0.7,
        title="Cross-class suppression IoU",
        description=(
            "Two boxes of one confusable group overlapping at least this much (IoU) are one object: only the "
            "higher-scoring box is kept, before tracking and in detections.v1. null turns it off."
        ),
        ge=0.3,
        le=1,
    )
    max_crops_per_track: int = Field(
        3, title="Crops per track", description="Most crops stored and announced per track.", ge=1, le=20
    )
    crop_quality_gain: float = Field(
        1.15,
        title="Crop quality gain",
        description=(
            "After a track's first crop, a moment is announced only when its crop quality beats the best "
            "announced by this factor."
        ),
        ge=1.0,
        le=3.0,
    )
    hold_best_crop: bool = Field(
        True,
        title="Hold the best crop for the track end",
        description=(
            "Keep the last of max_crops_per_track for the track's best moment: the best crop seen after the "
            "other slots are used is held (in the state snapshot) and announced when the track ends, if it "
            "beats the best announced by crop_quality_gain. Off: every crop is announced at once, first come."
        ),
    )
    crop_margin: float = Field(
        0.1, title="Crop margin", description="Margin around the box, as a fraction of its size.", ge=0, le=1
    )
    crop_jpeg_quality: int = Field(90, title="Crop JPEG quality", description="JPEG quality of crops.", ge=50, le=100)
    min_crop_side: int = Field(
        24, title="Minimum crop side", description="Pixels; smaller objects get no crop.", ge=4, le=1024
    )
    max_track_s: float = Field(
        600.0,
        title="Maximum track duration",
        description="A longer track is summarised in segments of this length.",
        ge=10,
        le=86_400,
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, title="Tracker", description="Tracker settings.")
    closeup_cameras: tuple[str, ...] = Field(
        (),
        title="Close-up cameras",
        description="Camera IDs whose frames the detector sees in closeup_views instead of models.detector_views: "
        "views where vehicles fill the frame (checkpoints, gates). The cameras of plate.checkpoint_cameras are "
        "close-up cameras too. Costs one detector run per view (docs/detect.md).",
        max_length=10_000,
    )
    closeup_views: tuple[str, ...] = Field(
        ("stretch", "square", "square@2"),
        title="Close-up views",
        description="Detector views of a close-up camera's frames (see models.detector_views): the default finds "
        "9 of 10 close-up vehicles of the labelled set against 6 for stretch alone, and calls no saloon a truck.",
        min_length=1,
        max_length=4,
    )

    @field_validator("closeup_views")
    @classmethod
    def _known_views(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_detector_views(value)

    @model_validator(mode="after")
    def _groups_well_formed(self) -> DetectConfig:
        seen: set[str] = set()
        for group in self.confusable_classes:
            if len(group) < 2 or any(not name or name != name.strip().lower() for name in group):
                msg = f"confusable_classes: each group needs two or more lower-case class names, got {list(group)}"
                raise ValueError(msg)
            if seen & set(group):
                msg = f"confusable_classes: {sorted(seen & set(group))} listed in more than one group"
                raise ValueError(msg)
            seen |= set(group)
        return self
