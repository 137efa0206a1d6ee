"""Configuration of video synopsis: length, rendering, backgrounds, object mattes, arrangement, worker.

The section is ``synopsis`` in the configuration tree (:class:`SynopsisConfig`). The energy terms and the
optimiser the arrangement fields tune are described in ``docs/design/synopsis.md``.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section
from schemas.common import CAMERA_ID_PATTERN


class RenderConfig(Section):
    """Output video: size, rate, encoder, labels."""

    fps: float | None = Field(
        None, title="Frame rate", description="Synopsis frames per second; default: the recording's frame rate.",
        gt=0, le=60,
    )
    max_width: int = Field(
        1280, title="Maximum width", description="The recording is fitted into this box (never upscaled).", ge=64, le=8192
    )
    max_height: int = Field(
        720, title="Maximum height", description="The recording is fitted into this box (never upscaled).", ge=64, le=8192
    )
    crf: int = Field(23, title="CRF", description="libx264 constant rate factor (lower is better quality).", ge=0, le=51)
    preset: str = Field(
        "veryfast", title="x264 preset", description="libx264 speed/size preset.",
        pattern=r"^(ultrafast|superfast|veryfast|faster|fast|medium|slow)$",
    )
    labels: bool = Field(True, title="Labels", description="Draw each object's original time above it.")
    label_timezone: str = Field(
        "UTC", title="Label time zone", description="IANA time zone of the labels (e.g. Europe/Berlin).",
        min_length=1, max_length=64,
    )

    @field_validator("label_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Berlin)"
            raise ValueError(msg) from None
        return value


class BackgroundConfig(Section):
    """Clean backgrounds: temporal median per period of the window."""

    period_s: float = Field(
        120.0, title="Period", description="Seconds of source covered by one background (refresh interval).",
        ge=5, le=86_400,
    )
    samples: int = Field(
        24, title="Samples", description="Frames per period whose per-pixel median is the background.", ge=3, le=200
    )


class MatteConfig(Section):
    """Separating the object from the background inside its box."""

    threshold: int = Field(
        28, title="Difference threshold", description="A pixel is foreground when a channel differs by more.",
        ge=1, le=255,
    )
    margin: float = Field(
        0.12, title="Box margin", description="The box is grown by this fraction of its size on each side.", ge=0, le=1
    )
    open_px: int = Field(3, title="Opening", description="Kernel size of the opening that removes noise.", ge=1, le=31)
    close_px: int = Field(9, title="Closing", description="Kernel size of the closing that fills the body.", ge=1, le=63)
    feather_px: float = Field(
        2.0, title="Feather", description="Gaussian sigma (output pixels) that softens the mask edge.", ge=0, le=20
    )
    min_fill: float = Field(
        0.06, title="Minimum fill", description="Below this mask fraction of the box a feathered ellipse is used.",
        ge=0, le=1,
    )


class ArrangeConfig(Section):
    """Energy weights and optimiser of the tube arrangement (see docs/design/synopsis.md)."""

    collision_weight: float = Field(
        1.0, title="Collision weight", description="Weight of overlap (frame-area x frames) between groups.", ge=0, le=1000
    )
    chronology_cost_s: float = Field(
        0.25, title="Chronology cost", description="A reversed pair costs this many seconds of full overlap of two "
        "average objects.", ge=0, le=3600,
    )
    activity_weight: float = Field(
        1.0, title="Activity weight", description="Weight of the activity of a left-out group (only with drop_objects).",
        ge=0, le=1000,
    )
    drop_objects: bool = Field(
        False, title="Drop objects", description="Let the optimiser leave out groups whose collisions cost more "
        "than their activity; off: every object is shown.",
    )
    max_speedup: float = Field(
        4.0, title="Maximum speed-up", description="The optimiser may play a group up to this many times faster than "
        "the speed that fits it (time-lapse, on a ladder of factors sqrt(2) apart) when that lowers the energy; 1: only "
        "groups longer than the synopsis are time-lapsed.", ge=1, le=64,
    )
    max_still_speedup: float = Field(
        32.0, title="Maximum speed-up of still objects", description="Beyond max_speedup, a group may be sped up to "
        "this factor as long as none of its objects then moves faster on screen than still_motion (parked vehicles, "
        "people who wait).", ge=1, le=1024,
    )
    still_motion: float = Field(
        0.5, title="Still motion", description="On-screen motion, in box heights per second (90th percentile over "
        "1-s steps), up to which a speed-up beyond max_speedup is allowed; a person walking at real time moves "
        "about 0.5-1.", ge=0, le=100,
    )
    speed_cost: float = Field(
        0.1, title="Speed-up cost", description="Weight of the object area a speed-up takes off the screen (frame-area "
        "x frames, like collision): a group is sped up only where more than about this share of it would be "
        "overlapped.", ge=0, le=1000,
    )
    opt_fps: float = Field(5.0, title="Optimiser rate", description="Time samples per second of the energy grid.", gt=0, le=30)
    grid_cols: int = Field(32, title="Grid columns", description="Cells across the frame for the collision grid.", ge=4, le=256)
    max_candidates: int = Field(
        400, title="Greedy candidates", description="Most start times the greedy pass evaluates per group.", ge=8, le=100_000
    )
    anneal_steps_per_group: int = Field(
        300, title="Annealing steps per group", description="Simulated-annealing moves per group.", ge=0, le=100_000
    )
    max_anneal_steps: int = Field(
        200_000, title="Annealing steps cap", description="Upper bound on annealing moves per build.", ge=0, le=10_000_000
    )
    seed: int = Field(7, title="Seed", description="Random seed: the same request gives the same synopsis.", ge=0, le=2**31)
    group_interacting: bool = Field(
        True, title="Group interacting objects", description="Objects that were close together move as one group."
    )
    interaction_distance: float = Field(
        0.5, title="Interaction distance", description="Gap between boxes, in box widths, that counts as together.",
        ge=0, le=10,
    )
    interaction_min_s: float = Field(
        1.0, title="Interaction time", description="Seconds two objects must be together to be grouped.", ge=0, le=3600
    )
    max_group_s: float = Field(
        30.0, title="Maximum group span", description="Groups are not merged beyond this span (seconds).", ge=0, le=86_400
    )


class WorkerConfig(Section):
    """The synopsis worker: request folder, leases, per-window synopses, track cache."""

    poll_s: float = Field(2.0, title="Poll interval", description="Seconds between looks at the request folder.", gt=0, le=3600)
    lease_s: float = Field(
        600.0, title="Lease", description="A running build whose heartbeat is older is taken over.", ge=10, le=86_400
    )
    status_s: float = Field(
        2.0, title="Status interval", description="Seconds between status writes (heartbeat and progress) while "
        "building; at most a third of the lease is used.", gt=0, le=3600,
    )
    window_cameras: tuple[str, ...] = Field(
        (), title="Per-window cameras", description="Cameras that get a synopsis for every closed window.", max_length=10_000,
    )
    window_s: float = Field(3600.0, title="Window", description="Length of a per-window synopsis's window.", ge=60, le=86_400)
    window_delay_s: float = Field(
        120.0, title="Window delay", description="Seconds after a window ends before its synopsis is built.", ge=0, le=86_400
    )
    window_length_s: float = Field(
        60.0, title="Per-window length", description="Target length of per-window synopses.", ge=1, le=3600
    )
    windows_back: int = Field(
        24, title="Windows back", description="How many past windows the worker makes sure exist.", ge=1, le=10_000
    )
    track_memory_s: float = Field(
        6 * 3600.0, title="Track memory", description="Track summaries older than this are dropped from the worker's "
        "cache.", ge=60, le=7 * 86_400,
    )

    @model_validator(mode="after")
    def _camera_ids_valid(self) -> WorkerConfig:
        pattern = re.compile(CAMERA_ID_PATTERN)
        bad = [c for c in self.window_cameras if not pattern.fullmatch(c)]
        if bad:
            msg = f"window_cameras: not camera IDs: {bad}"
            raise ValueError(msg)
        return self


class SynopsisConfig(Section):
    """Video synopsis (``tubeline synopsis``, ``tubeline worker synopsis``)."""

    prefix: str = Field(
        "synopsis", title="Prefix", description="Object-store prefix of synopsis videos and indexes.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    request_prefix: str = Field(
        "synopsis-requests", title="Request prefix", description="Object-store prefix the worker polls for requests.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    recordings_prefix: str = Field(
        "recordings", title="Recordings prefix", description="Where ingest keeps recordings (ingest.recordings.prefix).",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    default_length_s: float | None = Field(
        None, title="Default length", description="Target synopsis length when a request gives none; default: "
        "window / target_condensation within [min_length_s, max_length_s].", ge=1, le=3600,
    )
    target_condensation: float = Field(
        10.0, title="Target condensation", description="Window length / synopsis length when no length is given.",
        ge=1, le=10_000,
    )
    min_length_s: float = Field(10.0, title="Minimum length", description="Shortest automatic length.", ge=1, le=3600)
    max_length_s: float = Field(300.0, title="Maximum length", description="Longest automatic length.", ge=1, le=3600)
    max_window_s: float = Field(
        7 * 86_400.0, title="Maximum window", description="Longest source window one request may cover.", ge=1, le=31 * 86_400
    )
    render: RenderConfig = Field(default_factory=RenderConfig, title="Render", description="Output video.")
    background: BackgroundConfig = Field(
        default_factory=BackgroundConfig, title="Background", description="Temporal-median backgrounds."
    )
    matte: MatteConfig = Field(default_factory=MatteConfig, title="Matte", description="Object masks and alpha.")
    arrange: ArrangeConfig = Field(default_factory=ArrangeConfig, title="Arrange", description="Tube arrangement.")
    worker: WorkerConfig = Field(default_factory=WorkerConfig, title="Worker", description="The synopsis worker.")

    @model_validator(mode="after")
    def _length_bounds_ordered(self) -> SynopsisConfig:
        if self.min_length_s > self.max_length_s:
            msg = "min_length_s must not exceed max_length_s"
            raise ValueError(msg)
        return self
