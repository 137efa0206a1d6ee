"""Configuration of video quality diagnosis (``tubeline worker quality``, ``tubeline quality check``) and of
camera-health housekeeping (recording-gap alerts, the daily inspection report).

Thresholds are in the units of :mod:`pipeline.quality.measure`. A fault needs its *absolute* threshold and,
once the camera's baseline for the hour of day is learned, its *relative* threshold against that baseline
too (so a legitimately dark scene at night is not "too dark"); while a baseline is still being learned only
the stricter *hard* threshold counts. ``on`` is the severity (0..1; 0.5 = exactly at the thresholds) a
sample must reach, calibrated per fault on the labelled set (``benchmarks/quality``, ``docs/quality.md``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipeline.config.base import Section

Fault = Literal["blur", "dark", "bright", "low_contrast", "colour_cast", "noise", "freeze", "no_signal",
                "occlusion", "scene_change", "stripes"]
Severity = Annotated[float, Field(ge=0.05, le=1.0)]
CALIBRATED_ON: dict[Fault, float] = {
    "blur": 0.45, "dark": 0.5, "bright": 0.5, "low_contrast": 0.5, "colour_cast": 0.45, "noise": 0.5, "freeze": 0.5,
    "no_signal": 0.5, "occlusion": 0.35, "scene_change": 0.5, "stripes": 0.45,
}
"""``benchmarks/quality/evaluate.py``'s fit on the labelled set (docs/quality.md has the cross-validated table)."""
FAULTS: tuple[Fault, ...] = ("blur", "dark", "bright", "low_contrast", "colour_cast", "noise", "freeze",
                             "no_signal", "occlusion", "scene_change", "stripes")


class Thresholds(Section):
    """Absolute, relative and hard thresholds of every fault, and the calibrated severity each needs."""

    dark_mean: float = Field(0.12, title="Dark: mean luma", description="Mean luma (0..1) below which a picture is dark.", gt=0, lt=1)
    dark_rel: float = Field(0.5, title="Dark: share of baseline", description="...and below this share of the baseline's mean luma.", gt=0, le=1)
    bright_mean: float = Field(0.8, title="Bright: mean luma", description="Mean luma above which a picture is too bright.", gt=0, lt=1)
    bright_rel: float = Field(1.4, title="Bright: times baseline", description="...and above this multiple of the baseline's mean luma.", ge=1, le=10)
    contrast: float = Field(0.3, title="Low contrast", description="Luma spread (98th-2nd percentile, 0..1) below which contrast is low.", gt=0, lt=1)
    contrast_rel: float = Field(0.5, title="Low contrast: share of baseline", description="...and below this share of the baseline's spread.", gt=0, le=1)
    blur: float = Field(0.4, title="Blur", description="Blur effect (0 sharp .. 1 flat) above which a picture is blurred.", gt=0, lt=1)
    blur_rel: float = Field(0.12, title="Blur: above baseline", description="...and at least this much above the baseline's blur effect.", gt=0, lt=1)
    noise: float = Field(5.0, title="Noise", description="Noise sigma (grey levels) above which a picture is noisy.", gt=0, le=255)
    noise_rel: float = Field(2.5, title="Noise: times baseline", description="...and above this multiple of the baseline's noise.", ge=1, le=100)
    cast: float = Field(1.8, title="Colour cast", description="Cast factor above which a picture has a colour cast.", gt=0, le=100)
    cast_rel: float = Field(0.8, title="Colour cast: above baseline", description="...and at least this much above the baseline's cast factor.", gt=0, le=100)
    chroma: float = Field(30.0, title="Colour cast: chroma offset", description="...or a mean chroma offset (Lab units) above this.", gt=0, le=128)
    chroma_rel: float = Field(12.0, title="Colour cast: offset above baseline", description="...at least this much above the baseline's offset.", gt=0, le=128)
    uniform: float = Field(0.95, title="No signal", description="Share of pixels of one colour above which there is no picture.", gt=0, le=1)
    freeze_diff: float = Field(0.5, title="Freeze: mean difference", description="Mean grey-level change between samples below which the picture stands still.", gt=0, le=255)
    freeze_changed: float = Field(0.002, title="Freeze: changed pixels", description="...and share of pixels changed by more than 3 levels below this.", gt=0, le=1)
    occlusion: float = Field(0.25, title="Occlusion", description="Share of normally textured blocks gone flat above which the lens is partly covered.", gt=0, le=1)
    scene_change: float = Field(0.6, title="Scene change", description="Share of textured blocks no longer matching the reference above which the view changed.", gt=0, le=1)
    stripes: float = Field(2.3, title="Stripes", description="Spectral line strength (log units) above which there is interference.", gt=0, le=20)
    stripes_rel: float = Field(0.8, title="Stripes: above baseline", description="...and at least this much above the baseline's.", gt=0, le=20)
    hard: float = Field(1.6, title="Hard factor", description="While a baseline is learned, the absolute thresholds are made this much stricter.", ge=1, le=10)
    on: dict[Fault, Severity] = Field(
        default_factory=lambda: dict(CALIBRATED_ON), title="Severity to raise",
        description="Per fault, the severity a sample must reach to count as faulty (calibrated).",
    )


class QualityConfig(Section):
    """The quality worker and ``tubeline quality check``: sampling, hysteresis, baseline, outputs."""

    sample_interval_s: float = Field(1.0, title="Sample interval", description="Seconds between the frames the worker diagnoses per camera (the rest are skipped before decoding).", gt=0, le=3600)
    check_interval_s: float = Field(0.5, title="File check interval", description="Seconds between diagnosed frames in 'tubeline quality check'.", gt=0, le=60)
    max_jpeg_bytes: int = Field(8_000_000, title="Largest JPEG", description="Frames larger than this are dead-lettered without decoding.", ge=1000, le=100_000_000)
    on_s: float = Field(2.0, title="Rise time", description="Seconds a fault must persist before it starts (hysteresis).", ge=0, le=3600)
    freeze_on_s: float = Field(3.0, title="Freeze rise time", description="Seconds the picture must stand still before a freeze starts.", ge=0, le=3600)
    off_s: float = Field(2.0, title="Fall time", description="Seconds a fault must be gone before it ends (hysteresis).", ge=0, le=3600)
    off_ratio: float = Field(0.8, title="Release level", description="A fault ends only below this share of its raising severity.", gt=0, le=1)
    baseline_samples: int = Field(8, title="Baseline samples", description="Clean samples an hour-of-day baseline needs before relative thresholds apply.", ge=1, le=100_000)
    baseline_alpha: float = Field(0.05, title="Baseline adaptation", description="Weight of each new clean sample in the baseline (exponential average).", gt=0, le=1)
    heartbeat_s: float = Field(60.0, title="Heartbeat", description="Seconds between periodic health messages of a camera while nothing changes.", ge=1, le=86_400)
    thumbnails: bool = Field(True, title="Thumbnails", description="Keep a JPEG of the frame that started each fault (for the daily report).")
    thumbnail_prefix: str = Field("health/thumbnails", title="Thumbnail prefix", description="Object-store prefix of fault thumbnails.", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=200)
    report_prefix: str = Field("reports/daily", title="Report prefix", description="Object-store prefix of the daily inspection reports.", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=200)
    housekeeping_interval_s: float = Field(300.0, title="Housekeeping interval", description="Seconds between recording-gap checks and daily-report runs of the quality worker; 0 = off.", ge=0, le=86_400)
    report_hour_utc: int = Field(1, title="Report hour", description="UTC hour after which yesterday's daily report is made.", ge=0, le=23)
    gap_min_s: float = Field(30.0, title="Recording gap", description="Missing recording longer than this counts as a gap (alert and report).", gt=0, le=86_400)
    online_target: float = Field(0.95, title="Online target", description="Share of the day a camera must be online (the plan's front-end online rate); also the share of online time its picture must be fault-free to count as healthy.", gt=0, le=1)
    alert_faults: list[Fault] = Field(
        default_factory=lambda: list(FAULTS), title="Alerting faults",
        description="Faults that raise a quality_fault alert when they start (once per fault episode).", max_length=11,
    )
    thresholds: Thresholds = Field(default_factory=Thresholds, title="Fault thresholds",
                                   description="Absolute, relative and hard thresholds per fault, and the calibrated severities.")
