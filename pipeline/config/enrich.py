"""Configuration of the enrichment workers: plate recognition (``plate``), face embedding (``face``) and the
plate hotlists they match against (``hotlists``).

Three sections at the root of the tree: ``plate: PlateWorkerConfig``, ``face: FaceWorkerConfig`` and
``hotlists: HotlistsConfig``. Semantics of every knob are in
``docs/enrich.md``; the named cross-field checks are the small functions at the top of this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section
from pipeline.lookalikes import DEFAULT_GROUPS

VEHICLE_CLASSES = ("car", "truck", "bus", "motorcycle")
DEFAULT_CONFUSIONS = DEFAULT_GROUPS
"""Groups of characters OCR mistakes for one another on plates (each group: interchangeable characters)."""

SEVERITIES = ("info", "low", "medium", "high", "critical")
CLASS_NAME_PATTERN = r"^[a-z0-9][a-z0-9_ -]{0,63}$"
KEY_PREFIX_PATTERN = r"^[A-Za-z0-9_.=+-]+(/[A-Za-z0-9_.=+-]+)*$"
ClassName = Annotated[str, Field(pattern=CLASS_NAME_PATTERN)]


# -- named cross-field checks --------------------------------------------------------------------
def check_confusion_groups(groups: tuple[str, ...]) -> None:
    """Each confusion group has ≥ 2 distinct upper-case letters/digits, and no character is in two groups."""
    seen: dict[str, str] = {}
    for group in groups:
        if len(group) < 2 or len(set(group)) != len(group):
            msg = f"confusion group {group!r} needs at least two distinct characters"
            raise ValueError(msg)
        for ch in group:
            if not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
                msg = f"confusion group {group!r}: {ch!r} is not an upper-case letter or digit"
                raise ValueError(msg)
            if ch in seen:
                msg = f"{ch!r} is in two confusion groups ({seen[ch]!r} and {group!r}); merge them"
                raise ValueError(msg)
            seen[ch] = group


def check_classes(classes: tuple[str, ...], what: str) -> None:
    """Class lists are non-empty and without repeats."""
    if len(set(classes)) != len(classes):
        msg = f"{what}: a class is listed twice in {list(classes)}"
        raise ValueError(msg)


class _TrackTable(Section):
    max_tracks: int = Field(
        20_000,
        title="Tracks kept",
        description="Most tracks whose per-track state is held in memory; the least recently used is evicted.",
        ge=10,
        le=10_000_000,
    )
    track_idle_s: float = Field(
        900.0,
        title="Track idle time",
        description="A track with no crop for this many seconds (capture time) is evicted from memory.",
        gt=0,
        le=7 * 86_400,
    )
    max_lag_s: float = Field(
        1800.0,
        title="Maximum lag",
        description="Objects captured longer ago than this (wall clock) are skipped and counted, so a worker "
        "that fell behind catches up instead of working through stale crops; 0 never skips.",
        ge=0,
        le=30 * 86_400,
    )


class PlateWorkerConfig(_TrackTable):
    """The plate worker (``tubeline worker plate``): which objects it reads and how it votes."""

    classes: tuple[ClassName, ...] = Field(
        VEHICLE_CLASSES,
        title="Vehicle classes",
        description="Detector classes whose crops are searched for plates; other objects are skipped.",
        min_length=1,
        max_length=32,
    )
    min_read_confidence: float = Field(
        0.3,
        title="Minimum read confidence",
        description="Plate reads less confident than this (geometric mean of the characters) take no part in the vote.",
        ge=0,
        le=1,
    )
    min_improvement: float = Field(
        0.02,
        title="Minimum improvement",
        description="A track's read is published again (next revision) when the voted text changes or its "
        "confidence rises by at least this much.",
        ge=0,
        le=1,
    )
    max_reads_per_track: int = Field(
        16,
        title="Reads per track",
        description="Most reads kept per track for the vote (the most confident ones).",
        ge=1,
        le=256,
    )
    checkpoint_cameras: tuple[str, ...] = Field(
        (),
        title="Checkpoint cameras",
        description="Camera IDs of checkpoint / close-up views (卡口): the plate worker also reads their frames and "
        "finds plates on the whole frame, without a vehicle box (docs/enrich.md).",
        max_length=10_000,
    )
    checkpoint_every_n: int = Field(
        2,
        title="Checkpoint frame stride",
        description="Of a checkpoint camera's frames, every n-th (by sequence) is read for plates.",
        ge=1,
        le=1000,
    )
    checkpoint_gap_s: float = Field(
        2.0,
        title="Plate track gap",
        description="A checkpoint plate read continues a plate track seen at most this many seconds earlier "
        "(overlapping box or the same text up to look-alikes); otherwise it opens a new plate track.",
        gt=0,
        le=600,
    )
    max_frame_bytes: int = Field(
        20_000_000,
        title="Largest frame",
        description="Checkpoint frames larger than this (JPEG bytes) are dead-lettered before decoding.",
        ge=1000,
        le=200_000_000,
    )
    dedupe_window_s: float = Field(
        10.0,
        title="Same-plate window",
        description="A new track of the same camera whose first voted text equals (up to confusions) an earlier "
        "track's published text within this many seconds is the same vehicle (a fragmented or duplicated "
        "track): its reads join the earlier track's vote. 0 disables.",
        ge=0,
        le=3600,
    )
    state_prefix: str = Field(
        "state/plate",
        title="State prefix",
        description="Object-store prefix of the per-track vote state (read after a restart or rebalance).",
        pattern=KEY_PREFIX_PATTERN,
        max_length=200,
    )
    plate_crop_margin: float = Field(
        0.15,
        title="Plate crop margin",
        description="Margin around the plate box of the stored evidence crop, as a fraction of its size.",
        ge=0,
        le=2,
    )
    jpeg_quality: int = Field(90, title="JPEG quality", description="JPEG quality of stored plate crops.", ge=50, le=100)

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_classes(value, "plate.classes")
        return value


class FaceWorkerConfig(_TrackTable):
    """The face worker (``tubeline worker face``): quality gates and which faces of a track are embedded."""

    max_lag_s: float = Field(
        600.0,
        title="Maximum lag",
        description="Objects captured longer ago than this (wall clock) are skipped and counted; 0 never skips.",
        ge=0,
        le=30 * 86_400,
    )
    classes: tuple[ClassName, ...] = Field(
        ("person",),
        title="Person classes",
        description="Detector classes whose crops are searched for faces; other objects are skipped.",
        min_length=1,
        max_length=8,
    )
    min_person_height_px: int = Field(
        96,
        title="Minimum person height",
        description="Person boxes shorter than this (source-frame pixels) are skipped: their face is too small.",
        ge=0,
        le=4096,
    )
    max_faces_per_track: int = Field(
        3, title="Faces per track", description="Most face records published per track.", ge=1, le=50
    )
    state_prefix: str = Field(
        "state/face",
        title="State prefix",
        description="Object-store prefix of the per-track state (faces published, crops seen) a restarted "
        "worker continues from.",
        pattern=KEY_PREFIX_PATTERN,
        max_length=200,
    )
    quality_gain: float = Field(
        1.25,
        title="Quality gain",
        description="A further face of a track is published when its quality beats the track's best published "
        "face by this factor ...",
        ge=1.0,
        le=10.0,
    )
    max_similarity: float = Field(
        0.97,
        title="Diversity similarity",
        description="... or when its cosine similarity to every published face of the track is below this "
        "(a different view).",
        ge=-1.0,
        le=1.0,
    )
    min_detection_score: float = Field(
        0.6, title="Gate: detection score", description="Minimum face-detector confidence.", ge=0, le=1
    )
    min_eye_distance_px: float = Field(
        12.0, title="Gate: eye distance", description="Minimum pixels between the eyes (resolution; docs/models.md, "
        "'Quality gates').", ge=0, le=4096
    )
    min_sharpness: float = Field(
        10.0,
        title="Gate: sharpness",
        description="Minimum variance of the Laplacian of the grey 112x112 aligned face (blur).",
        ge=0,
        le=100_000,
    )
    max_yaw_deg: float = Field(40.0, title="Gate: yaw", description="Largest |yaw| in degrees (pose).", ge=0, le=90)
    max_pitch: float = Field(
        0.35, title="Gate: pitch", description="Largest |pitch| ratio (0 = frontal; see docs/models.md).", ge=0, le=2
    )
    max_roll_deg: float = Field(
        45.0, title="Gate: roll", description="Largest |roll| in degrees (alignment undoes roll).", ge=0, le=180
    )
    min_quality: float = Field(
        0.05, title="Gate: quality", description="Minimum combined quality score (size x blur x pose).", ge=0, le=1
    )
    jpeg_quality: int = Field(92, title="JPEG quality", description="JPEG quality of stored face chips.", ge=50, le=100)

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_classes(value, "face.classes")
        return value


class HotlistsConfig(Section):
    """Plate hotlists: where the lists come from and how plates are matched against them."""

    files: tuple[Path, ...] = Field(
        (),
        title="Hotlist files",
        description="YAML or CSV files with hotlists (format in docs/enrich.md); relative to the working directory.",
        max_length=256,
    )
    store_prefix: str = Field(
        "hotlists",
        title="Store prefix",
        description="Object-store prefix of managed hotlists ({prefix}/{name}.json; `tubeline hotlists`, the API).",
        pattern=KEY_PREFIX_PATTERN,
        max_length=200,
    )
    refresh_s: float = Field(
        30.0, title="Refresh interval", description="Seconds between re-reads of files and store.", gt=0, le=86_400
    )
    max_cost: float = Field(
        1.0,
        title="Maximum match cost",
        description="Weighted edit distance up to which a read matches an entry (1 = one edit).",
        ge=0,
        le=2,
    )
    confusion_cost: float = Field(
        0.25,
        title="Confusion cost",
        description="Cost of substituting characters of one confusion group (0/O, 8/B, ...) instead of 1, for pairs "
        "without a measured cost (or all pairs with measured_costs off).",
        ge=0,
        le=1,
    )
    measured_costs: bool = Field(
        True,
        title="Measured confusion costs",
        description="Use the pair costs measured from the plate reader's own errors (pipeline/lookalikes.json, "
        "docs/enrich.md) inside the groups; off: every pair of a group costs confusion_cost.",
    )
    confusions: tuple[str, ...] = Field(
        DEFAULT_CONFUSIONS,
        title="Confusion groups",
        description="Groups of characters OCR confuses; any two characters of a group substitute at confusion_cost.",
        max_length=32,
    )
    min_confidence: float = Field(
        0.3,
        title="Minimum read confidence",
        description="Voted reads below this confidence raise no hotlist alert.",
        ge=0,
        le=1,
    )

    @field_validator("confusions")
    @classmethod
    def _confusions_valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_confusion_groups(value)
        return value

    @model_validator(mode="after")
    def _confusions_cheaper(self) -> HotlistsConfig:
        if self.confusion_cost > self.max_cost and self.max_cost > 0:
            msg = "hotlists.confusion_cost above max_cost would make every confusion a non-match"
            raise ValueError(msg)
        return self


__all__ = ["FaceWorkerConfig", "HotlistsConfig", "PlateWorkerConfig"]
