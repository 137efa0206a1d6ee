"""Building one synopsis: request → tracks → tubes → arrangement → backgrounds, mattes, frames → MP4 + index.

:func:`build_synopsis` is the function the CLI, the worker and the API call. It reads tracks through a
:class:`workers.synopsis.sources.TrackSource` and pixels from the recordings in ``store``, writes
``synopsis/{camera}/{id}.mp4`` and ``synopsis/{camera}/{id}.json`` (keys from the request's stable ID:
a rebuild overwrites) and returns a :class:`SynopsisResult`. The steps and their reasons are in
``docs/design/synopsis.md``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipeline.config.synopsis import SynopsisConfig
from pipeline.store.base import ObjectStore
from pipeline.synopsis.index import SynopsisIndex, SynopsisMetrics, SynopsisObject
from pipeline.synopsis.request import SynopsisKeys, SynopsisRequest
from workers.synopsis.arrange import Arrangement, arrange
from workers.synopsis.matte import CropCache, build_backgrounds
from workers.synopsis.metrics import collision_ratio, reversed_pairs, source_frames
from workers.synopsis.render import CropStats, extract_crops, render_video, schedule
from workers.synopsis.sources import TrackPath, TrackSource, select_tracks
from workers.synopsis.tubes import Group, Tube, build_tubes
from workers.synopsis.video import Footage, FootageReader, find_footage, output_size

log = logging.getLogger(__name__)


class NothingToShow(LookupError):
    """No track of the camera matches the request in the window: there is nothing to condense."""


@dataclass
class SynopsisResult:
    """What a build produced: the stable ID, the store keys, the index (with metrics) and a local copy if asked."""

    synopsis_id: str
    camera_id: str
    keys: SynopsisKeys
    index: SynopsisIndex
    video_path: Path | None = None


@dataclass
class _Plan:
    paths: list[TrackPath]
    footage: Footage
    window: tuple[float, float]
    fps: float
    size: tuple[int, int]
    tubes: list[Tube]
    groups: list[Group]
    arrangement: Arrangement
    arrange_s: float


PHASES: dict[str, tuple[float, float]] = {
    "arrange": (0.0, 0.05), "background": (0.05, 0.30), "mattes": (0.30, 0.60), "render": (0.60, 0.97),
    "store": (0.97, 1.0),
}
"""Share of a build each phase usually takes (measured on vtest and the one-hour benchmark), for progress."""


class _Progress:
    """Maps each phase's own 0..1 onto the whole build; calls the listener on each new phase and then at most
    once per 1 % step."""

    def __init__(self, listener: Callable[[str, float], None] | None) -> None:
        self.listener = listener
        self.last = -1.0
        self.last_phase = ""

    def __call__(self, phase: str, fraction: float) -> None:
        if self.listener is not None and (phase != self.last_phase or fraction - self.last >= 0.01):
            self.last, self.last_phase = max(fraction, self.last), phase
            self.listener(phase, self.last)

    def phase(self, name: str) -> Callable[[float], None]:
        low, high = PHASES[name]
        return lambda done: self(name, low + (high - low) * min(1.0, max(0.0, done)))


def synopsis_length_s(request: SynopsisRequest, settings: SynopsisConfig, window_s: float) -> float:
    """Requested length, else the configured default, else window / target condensation within bounds."""
    if request.length_s is not None:
        length = request.length_s
    elif settings.default_length_s is not None:
        length = settings.default_length_s
    else:
        length = min(settings.max_length_s, max(settings.min_length_s, window_s / settings.target_condensation))
    return max(1.0, min(length, window_s)) if window_s >= 1.0 else 1.0


def plan_synopsis(store: ObjectStore, request: SynopsisRequest, source: TrackSource,
                  settings: SynopsisConfig) -> _Plan:
    """Tracks, recordings, tubes and their arrangement (everything before pixels)."""
    paths = select_tracks(source, request)
    if not paths:
        msg = f"no object of camera {request.camera_id} matches the request between " \
              f"{request.start.isoformat()} and {request.end.isoformat()}"
        raise NothingToShow(msg)
    footage = find_footage(store, request.camera_id, request.start, request.end, settings.recordings_prefix)
    window = (max(request.start.timestamp(), footage.start_s), min(request.end.timestamp(), footage.end_s))
    fps = settings.render.fps or footage.fps
    size = output_size(footage.width, footage.height, settings.render.max_width, settings.render.max_height)
    length_frames = max(2, round(synopsis_length_s(request, settings, window[1] - window[0]) * fps))
    tubes, groups = build_tubes(paths, fps=fps, size=size, length_frames=length_frames, settings=settings.arrange)
    started = time.monotonic()
    arrangement = arrange(tubes, groups, fps=fps, size=size, length_frames=length_frames,
                          settings=settings.arrange, window=window)
    # the arrangement may have sped groups up: render and index the tubes as shown
    return _Plan(paths, footage, window, fps, size, arrangement.tubes, arrangement.groups, arrangement,
                 time.monotonic() - started)


@dataclass(frozen=True)
class PlanQuality:
    """The arrangement's quality figures, exactly as the index reports them (``workers.synopsis.metrics``)."""

    objects: int
    time_lapsed: int
    collision_ratio: float
    source_collision_ratio: float
    chronology_violations: int
    chronology_pairs: int


def plan_quality(plan: _Plan) -> PlanQuality:
    """Collision (synopsis and source) and chronology of a plan, computed from the boxes as shown."""
    shown, _ = schedule(plan.tubes, plan.arrangement)
    placed = [t for t in plan.tubes if plan.arrangement.tube_start(t) >= 0]
    starts = np.array([plan.arrangement.tube_start(t) for t in placed], dtype=np.float64)
    original = np.array([t.path.start_s for t in placed], dtype=np.float64)
    n = len(placed)
    return PlanQuality(
        objects=n, time_lapsed=sum(1 for t in placed if t.speed > 1.0),
        collision_ratio=collision_ratio(np.array([t.boxes[k] for t, k in shown[f]]) for f in sorted(shown)),
        source_collision_ratio=collision_ratio(source_frames(plan.paths, plan.fps)),
        chronology_violations=reversed_pairs(original, starts), chronology_pairs=n * (n - 1) // 2,
    )


def _object(tube: Tube, start: int, plan: _Plan) -> SynopsisObject:
    width, height = plan.size
    boxes = np.rint(tube.boxes).astype(int)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    path = tube.path
    return SynopsisObject(
        track_id=path.track_id, segments=path.segments, camera_id=path.camera_id, class_name=path.class_name,
        colour=path.colour, plate=path.plate, original_start=path.started_at, original_end=path.ended_at,
        clipped=path.clipped, speed=float(tube.speed), group=tube.group, first_frame=start,
        first_frame_time=datetime.fromtimestamp(float(tube.times[0]), tz=UTC),
        synopsis_start_s=start / plan.fps, synopsis_end_s=(start + tube.frames) / plan.fps,
        boxes=tuple(tuple(int(v) for v in box) for box in boxes),
    )


def _metrics(plan: _Plan, frames: int, crops: CropStats, timings: dict[str, float]) -> SynopsisMetrics:
    quality = plan_quality(plan)
    source_s = plan.window[1] - plan.window[0]
    synopsis_s = frames / plan.fps
    render_s = timings["render"]
    return SynopsisMetrics(
        source_s=source_s, synopsis_s=synopsis_s, condensation=source_s / synopsis_s if synopsis_s else 0.0,
        objects=quality.objects, left_out=len(plan.tubes) - quality.objects, groups=len(plan.groups),
        time_lapsed=quality.time_lapsed, collision_ratio=quality.collision_ratio,
        source_collision_ratio=quality.source_collision_ratio,
        chronology_violations=quality.chronology_violations, chronology_pairs=quality.chronology_pairs,
        energy=float(plan.arrangement.energy), greedy_energy=float(plan.arrangement.greedy_energy),
        missing_crops=crops.missing, arrange_s=plan.arrange_s, background_s=timings["background"],
        matte_s=timings["matte"], composite_s=timings["composite"], render_s=render_s, build_s=timings["build"],
        render_fps=frames / render_s if render_s > 0 else 0.0,
    )


def _index(request: SynopsisRequest, keys: SynopsisKeys, plan: _Plan, frames: int,
           metrics: SynopsisMetrics) -> SynopsisIndex:
    objects = [_object(t, plan.arrangement.tube_start(t), plan) for t in plan.tubes
               if plan.arrangement.tube_start(t) >= 0]
    return SynopsisIndex(
        synopsis_id=request.synopsis_id(), camera_id=request.camera_id, request=request,
        created_at=datetime.now(UTC), video_key=keys.video,
        window_start=datetime.fromtimestamp(plan.window[0], tz=UTC),
        window_end=datetime.fromtimestamp(plan.window[1], tz=UTC),
        fps=float(plan.fps), width=plan.size[0], height=plan.size[1], frames=frames,
        source_width=plan.footage.width, source_height=plan.footage.height, metrics=metrics, objects=tuple(objects),
    )


def build_synopsis(
    store: ObjectStore, request: SynopsisRequest, source: TrackSource, settings: SynopsisConfig | None = None,
    *, out_path: str | Path | None = None, progress: Callable[[str, float], None] | None = None,
) -> SynopsisResult:
    """Build, store and return one synopsis; ``NothingToShow`` when no track matches, ``LookupError`` when
    the camera has no recording in the window. ``progress(phase, fraction)`` is called as the build goes
    (phases ``arrange``, ``background``, ``mattes``, ``render``, ``store``; the fraction is of the whole
    build, by the share each phase usually takes)."""
    settings = settings or SynopsisConfig()
    started = time.monotonic()
    report = _Progress(progress)
    keys = SynopsisKeys.of(request.camera_id, request.synopsis_id(), settings.prefix, settings.request_prefix)
    report("arrange", 0.0)
    plan = plan_synopsis(store, request, source, settings)
    with tempfile.TemporaryDirectory(prefix="tubeline-synopsis-") as tmp:
        marks = [time.monotonic()]
        reader = FootageReader(store, plan.footage, plan.size)
        backgrounds = build_backgrounds(reader, plan.window[0], plan.window[1], settings.background,
                                        report.phase("background"))
        marks.append(time.monotonic())
        cache = CropCache(tmp)
        video = Path(tmp) / "synopsis.mp4"
        try:
            crops = extract_crops(reader, plan.tubes, plan.arrangement, backgrounds, settings.matte, cache,
                                  plan.footage.fps, report.phase("mattes"))
            marks.append(time.monotonic())
            rendered = render_video(video, plan.tubes, plan.arrangement, backgrounds, cache, fps=plan.fps,
                                    size=plan.size, window=plan.window, settings=settings.render,
                                    progress=report.phase("render"))
            marks.append(time.monotonic())
        finally:
            cache.close()
        timings = {"background": marks[1] - marks[0], "matte": marks[2] - marks[1], "composite": marks[3] - marks[2],
                   "render": marks[3] - marks[0], "build": marks[3] - started}
        report("store", PHASES["store"][0])
        metrics = _metrics(plan, rendered.frames, crops, timings)
        index = _index(request, keys, plan, rendered.frames, metrics)
        store.put(keys.video, video, content_type="video/mp4",
                  metadata={"camera-id": request.camera_id, "synopsis-id": index.synopsis_id})
        store.put(keys.index, index.to_json(), content_type="application/json",
                  metadata={"camera-id": request.camera_id, "synopsis-id": index.synopsis_id})
        local = None
        if out_path is not None:
            local = Path(out_path)
            shutil.copyfile(video, local)
    log.info("synopsis %s of %s: %d objects, %.1f s from %.1f s (x%.1f), collision %.3f, built in %.1f s",
             index.synopsis_id, request.camera_id, metrics.objects, metrics.synopsis_s, metrics.source_s,
             metrics.condensation, metrics.collision_ratio, metrics.build_s)
    return SynopsisResult(index.synopsis_id, request.camera_id, keys, index, local)
