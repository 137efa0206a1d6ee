"""Video quality diagnosis in units: the hour-of-day baseline (a dark street at night is not "too dark", the
same picture by day is), hysteresis without flapping, masking, scene change forgetting the baseline,
the camera-health message rules, the KPI health definition and the metrics' stage summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram
from pydantic import ValidationError

from pipeline.config.ingest import CameraSpec
from pipeline.config.quality import FAULTS, QualityConfig
from pipeline.health.history import Interval
from pipeline.health.kpi import CameraDay, compute, missing_fields
from pipeline.metrics import stage_summary
from pipeline.quality.diagnose import CameraDiagnoser, segments
from pipeline.quality.measure import measure
from schemas.cameras import CameraHealth

VTEST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "vtest.avi"
with av.open(str(VTEST)) as _video:
    SCENE = cv2.resize(next(_video.decode(video=0)).to_ndarray(format="bgr24"), (384, 288), interpolation=cv2.INTER_AREA)


def frame(gain: float = 1.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 2.0, SCENE.shape[:2])[..., None]
    return np.clip(SCENE.astype(np.float32) * gain + noise, 0, 255).astype(np.uint8)


def feed(d: CameraDiagnoser, t0: float, hour: int, frames: list[np.ndarray], step: float = 1.0) -> list:
    out = []
    for i, f in enumerate(frames):
        out += d.observe(t0 + i * step, hour, f)[1]
    return out


def test_measures_separate_a_dark_scene_from_no_signal() -> None:
    dark, blank = measure(frame(0.15)), measure(np.full_like(SCENE, 40))
    assert dark.mean < 0.12 and dark.uniform < 0.9 and dark.contrast > 0.03
    assert blank.uniform > 0.99 and blank.contrast == 0.0


def test_a_dark_night_is_not_too_dark_but_the_same_picture_by_day_is() -> None:
    d = CameraDiagnoser(QualityConfig())
    night = [frame(0.17, s) for s in range(20)]  # a dim street: mean ~0.085, still textured
    day = [frame(1.0, s) for s in range(20)]
    # First night: no baseline for the hour yet; only the hard threshold counts, and it is not crossed.
    assert feed(d, 0, 22, night) == []
    assert d.baseline(22) is not None and d.baseline(22).mean < 0.1
    assert feed(d, 100, 10, day) == []
    # Second night: the hour's baseline says this is how the camera looks at 22:00.
    assert feed(d, 86_400, 22, night) == []
    # The same dim picture at 10:00 is a fault: far below the learned morning picture.
    found = feed(d, 86_500, 10, night[:6])
    assert [(t.kind, t.fault, t.start_s) for t in found] == [("start", "dark", 86_500)]


def test_a_covered_lens_at_night_is_still_caught() -> None:
    d = CameraDiagnoser(QualityConfig())
    assert feed(d, 0, 22, [frame(0.17, s) for s in range(12)]) == []
    # Covered in the dark the picture is black: no signal (which hides the dark and freeze it also is).
    found = feed(d, 20, 22, [frame(0.04, s) for s in range(5)])
    assert [(t.kind, t.fault) for t in found] == [("start", "no_signal")]


def _sev(**values: float) -> dict:
    sev = dict.fromkeys(FAULTS, 0.0)
    sev.update(values)
    return sev


def test_hysteresis_needs_persistence_to_start_and_to_end() -> None:
    d = CameraDiagnoser(QualityConfig(on_s=2.0, off_s=2.0))
    out = []
    # Alternating above/below every second: never 2 s above in a row -> nothing starts (no flapping).
    for i in range(10):
        out += d._hysteresis(float(i), _sev(blur=0.2 if i % 2 else 0.7))
    assert out == []
    for t in (10.0, 11.0, 12.0):
        out += d._hysteresis(t, _sev(blur=0.7))
    assert [(x.kind, x.start_s) for x in out] == [("start", 10.0)]
    # Dips shorter than off_s, or within the release band (0.5 x 0.8 = 0.4), do not end it.
    for t, v in ((13.0, 0.1), (14.0, 0.45), (15.0, 0.2), (16.0, 0.7), (17.0, 0.1), (18.0, 0.1)):
        out += d._hysteresis(t, _sev(blur=v))
    assert [(x.kind, x.fault) for x in out] == [("start", "blur")]
    out += d._hysteresis(19.0, _sev(blur=0.1))
    assert [(x.kind, x.start_s, x.end_s) for x in out[1:]] == [("end", 10.0, 17.0)]
    assert segments(out)[0].as_json() == {"start_s": 10.0, "end_s": 17.0, "fault": "blur", "score": 0.7}


def test_no_signal_masks_everything_it_causes() -> None:
    d = CameraDiagnoser(QualityConfig())
    masked = d.mask(_sev(no_signal=0.6, dark=1.0, low_contrast=1.0, freeze=1.0, blur=0.9))
    assert {f for f, v in masked.items() if v} == {"no_signal"}
    masked = d.mask(_sev(dark=0.8, low_contrast=0.9, noise=0.7, occlusion=0.6))
    assert {f for f, v in masked.items() if v} == {"dark"}


def test_scene_change_is_an_instant_and_forgets_the_baseline() -> None:
    d = CameraDiagnoser(QualityConfig())
    feed(d, 0, 9, [frame(1.0, s) for s in range(12)])
    assert d.baseline(9) is not None
    turned = [cv2.flip(frame(1.0, s), -1) for s in range(6)]
    found = feed(d, 12, 9, turned)
    assert [(t.kind, t.fault, t.start_s, t.end_s) for t in found] == [("instant", "scene_change", 12.0, 12.0)]
    assert d.baseline(9) is None


def test_camera_health_message_rules() -> None:
    e = CameraHealth.example()
    with pytest.raises(ValidationError, match="timezone"):
        CameraHealth.model_validate({**e.model_dump(), "started_at": datetime(2024, 5, 1, 8)})  # noqa: DTZ001
    with pytest.raises(ValidationError, match="summary has no fault"):
        CameraHealth.model_validate({**e.model_dump(), "event": "summary"})
    started = CameraHealth.model_validate({**e.model_dump(), "event": "fault_started", "ended_at": None,
                                           "problems": ("blur",), "verdict": "degraded"})
    assert started.idempotency_key().endswith("/fault_started/blur/2024-05-01T08:00:12Z")


def _day(rate_online: float, fault_s: float) -> CameraDay:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    online_s = 86_400 * rate_online
    spans = [Interval("c", "online", t0, t0 + timedelta(seconds=online_s)),
             Interval("c", "offline", t0 + timedelta(seconds=online_s), t0 + timedelta(days=1))]
    cam = CameraSpec(id="c", kind="file", url="x", name="c", point_class="II", latitude=1.0, longitude=2.0,
                     admin_unit="510104")
    healthy = rate_online >= 0.95 and fault_s <= 0.05 * online_s
    return CameraDay(cam, spans, [], None, rate_online, fault_s, healthy)


def test_kpis_weigh_online_time_and_count_healthy_cameras() -> None:
    k = compute([_day(1.0, 0.0), _day(0.96, 5000.0), _day(0.5, 0.0)], 0.95)
    assert k.online_rate == pytest.approx((1.0 + 0.96 + 0.5) / 3)
    assert k.cameras_meeting_target == 2 and k.health_rate == pytest.approx(1 / 3)
    assert k.archive_completeness == 1.0 and missing_fields(CameraSpec(id="x", kind="file", url="y")) == [
        "name", "point_class", "latitude", "longitude", "admin_unit"]
    assert k.units["510104"].cameras == 3 and k.case_video_intake is None


def test_stage_summary_reads_histogram_buckets() -> None:
    registry = CollectorRegistry()
    h = Histogram("tubeline_stage_latency_seconds", "x", ["stage"], buckets=(0.1, 0.5, 1.0, 5.0), registry=registry)
    for v in (0.05, 0.2, 0.3, 0.4, 2.0):
        h.labels("detect").observe(v)
    (s,) = stage_summary(registry)
    assert (s.stage, s.count, s.p50_s, s.p95_s) == ("detect", 5, 0.5, 5.0)
    assert s.mean_s == pytest.approx(0.59)
