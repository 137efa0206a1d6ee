"""Synopsis of vtest.avi from the real pipeline: ingest → detect → tracks (in-memory bus) and recordings (local
store), then the synopsis builder, the worker and the CLI on them.

Must-show checks: the synopsis is at most 1/5 of the source, every track appears exactly once, the index's
original times are the tracks' times, its boxes follow the tracks, the pixels under a box come from the
original frame of that time, a click finds the object; a persons-only synopsis holds exactly the persons,
each with the same original times and time-lapse as in the full one, and no vehicle.

The pipeline runs once per test session (about 20 s on 2 cores; the integration test reuses it). Synopses are
rendered at 384x288 (half of vtest's 768x576) to keep the suite fast; the CLI test renders at full size.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import workers.runner.embedded
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec
from pipeline.config.synopsis import SynopsisConfig
from pipeline.recordings import load_index
from pipeline.store.local import LocalStore
from pipeline.synopsis.index import SynopsisIndex, SynopsisObject
from pipeline.synopsis.queue import submit_synopsis, synopsis_status
from schemas.topics import TRACKS
from schemas.tracks import TrackSummary
from tests.conftest import REPO, TESTDATA
from workers.synopsis import MemoryTrackSource, SynopsisRequest, build_synopsis, object_at
from workers.synopsis.builder import SynopsisResult
from workers.synopsis.render import label_rect, label_scale
from workers.synopsis.worker import SynopsisWorker

CAMERA = "vtest"
VEHICLES = {"car", "truck", "bus", "motorcycle", "bicycle"}
SETTINGS = SynopsisConfig.model_validate({
    "render": {"max_width": 384, "max_height": 288},
    "background": {"period_s": 40, "samples": 12},
})


@dataclass
class VtestRun:
    """vtest.avi through the embedded pipeline: its store (recordings) and its track summaries."""

    store_root: Path
    summaries: list[TrackSummary]
    source_s: float

    def store(self) -> LocalStore:
        return LocalStore(self.store_root)

    def request(self, **kw: object) -> SynopsisRequest:
        start = min(s.started_at for s in self.summaries) - timedelta(seconds=1)
        end = max(s.ended_at for s in self.summaries) + timedelta(seconds=1)
        return SynopsisRequest(camera_id=CAMERA, start=start, end=end, length_s=15.0, **kw)  # type: ignore[arg-type]


_RUNS: dict[str, VtestRun] = {}


def vtest_run(factory: pytest.TempPathFactory) -> VtestRun:
    """The session's one pipeline run on vtest.avi (the tracks topic is read from the run's own memory bus)."""
    if "vtest" in _RUNS:
        return _RUNS["vtest"]
    root = factory.mktemp("synopsis-vtest") / "store"
    config = TubelineConfig.model_validate({
        "store": {"local": {"root": str(root)}},
        "ingest": {"overflow": "block", "analysis_fps": 5.0},
    })
    bus = MemoryBus(default_partitions=config.bus.default_partitions)
    video = TESTDATA / "vtest.avi"
    camera = CameraSpec(id=CAMERA, kind="file", device_type="file", url=str(video), realtime=False)
    result = workers.runner.embedded.run_embedded(config, [camera], timeout_s=300, bus=bus)
    assert result.frames_published == result.frames_detected > 300
    summaries = [TrackSummary.from_json(v) for v in workers.runner.embedded.read_topic(bus, TRACKS.name)]
    assert len({s.track_id for s in summaries}) >= 10
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        source_s = float(stream.frames / stream.average_rate)
    _RUNS["vtest"] = VtestRun(root, summaries, source_s)
    return _RUNS["vtest"]


@pytest.fixture(scope="module")
def vtest(tmp_path_factory: pytest.TempPathFactory) -> VtestRun:
    return vtest_run(tmp_path_factory)


@pytest.fixture(scope="module")
def full(vtest: VtestRun, tmp_path_factory: pytest.TempPathFactory) -> SynopsisResult:
    out = tmp_path_factory.mktemp("synopsis-full") / "full.mp4"
    return build_synopsis(vtest.store(), vtest.request(), MemoryTrackSource(vtest.summaries), SETTINGS, out_path=out)


@pytest.fixture(scope="module")
def persons(vtest: VtestRun, tmp_path_factory: pytest.TempPathFactory) -> SynopsisResult:
    out = tmp_path_factory.mktemp("synopsis-persons") / "persons.mp4"
    return build_synopsis(vtest.store(), vtest.request(classes=("person",)), MemoryTrackSource(vtest.summaries),
                          SETTINGS, out_path=out)


def _decode(path: Path) -> tuple[list[np.ndarray], str, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return frames, codec, pix_fmt


def _box_at(summary: TrackSummary, when: float, sx: float, sy: float) -> np.ndarray:
    path = np.asarray(summary.path, dtype=np.float64)
    t = summary.started_at.timestamp() + path[:, 0]
    box = np.array([np.interp(when, t, path[:, c]) for c in range(1, 5)])
    return box * np.array([sx, sy, sx, sy])


def _alone(index: SynopsisIndex, obj: SynopsisObject, frame: int) -> bool:
    """True when no other object's box or time label covers ``obj``'s box in ``frame``."""
    x1, y1, x2, y2 = obj.boxes[frame - obj.first_frame]
    scale = label_scale(index.height)
    for other in index.objects:
        if other is obj or not other.first_frame <= frame <= other.last_frame:
            continue
        box = other.boxes[frame - other.first_frame]
        for a1, b1, a2, b2 in (box, label_rect(box, index.width, index.height, scale)):
            if a1 < x2 and x1 < a2 and b1 < y2 and y1 < b2:
                return False
    return True


# -- must show --------------------------------------------------------------------------------------------
def test_vtest_synopsis_is_a_fifth_of_the_source_with_every_track_once(vtest: VtestRun, full: SynopsisResult) -> None:
    index = full.index
    frames, codec, pix_fmt = _decode(full.video_path)  # type: ignore[arg-type]
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert len(frames) == index.frames and frames[0].shape == (index.height, index.width, 3) == (288, 384, 3)
    assert index.duration_s <= vtest.source_s / 5, f"{index.duration_s} s from {vtest.source_s} s"
    tracks = {s.track_id: s for s in vtest.summaries}
    shown = Counter(obj.track_id for obj in index.objects)
    assert set(shown) == set(tracks) and set(shown.values()) == {1}
    for obj in index.objects:
        summary = tracks[obj.track_id]
        assert (obj.original_start, obj.original_end) == (summary.started_at, summary.ended_at)
        assert obj.class_name == summary.class_name and obj.segments == (summary.segment,)
        assert summary.started_at <= obj.first_frame_time <= summary.ended_at
        assert obj.last_frame < index.frames
    m = index.metrics
    assert m.missing_crops == 0 and m.left_out == 0 and m.objects == len(tracks)
    assert 0.0 <= m.collision_ratio < 0.5 and m.condensation >= 5.0
    print(f"\nvtest synopsis: {m.synopsis_s:.1f} s from {m.source_s:.1f} s (x{m.condensation:.2f}), "
          f"{m.objects} objects, collision ratio {m.collision_ratio:.3f} (source {m.source_collision_ratio:.3f}), "
          f"chronology violations {m.chronology_violations}/{m.chronology_pairs}, render {m.render_fps:.1f} frames/s")


def test_index_boxes_follow_the_tracks(vtest: VtestRun, full: SynopsisResult) -> None:
    index = full.index
    tracks = {s.track_id: s for s in vtest.summaries}
    for obj in index.objects:
        summary = tracks[obj.track_id]
        sx, sy = index.width / summary.frame_width, index.height / summary.frame_height
        for frame in sorted({obj.first_frame, (obj.first_frame + obj.last_frame) // 2, obj.last_frame}):
            expected = _box_at(summary, obj.original_time(frame, index.fps).timestamp(), sx, sy)
            got = np.array(obj.boxes[frame - obj.first_frame], dtype=float)
            assert np.abs(got - expected).max() <= 1.0, (obj.track_id, frame, got, expected)


def _inside(box: tuple[int, int, int, int], width: int, height: int, margin: int = 2) -> bool:
    x1, y1, x2, y2 = box
    return x1 >= margin and y1 >= margin and x2 <= width - margin and y2 <= height - margin


def test_pixels_under_a_box_come_from_the_original_time(vtest: VtestRun, full: SynopsisResult) -> None:
    index = full.index
    store = vtest.store()
    day = index.window_start.strftime("%Y-%m-%d")
    origin = load_index(store, "recordings", CAMERA, day)[0].start_dt.timestamp()
    with av.open(str(TESTDATA / "vtest.avi")) as container:
        source = [cv2.resize(f.to_ndarray(format="bgr24"), (index.width, index.height), interpolation=cv2.INTER_AREA)
                  for f in container.decode(video=0)]
    synopsis, _, _ = _decode(full.video_path)  # type: ignore[arg-type]
    right, wrong = [], []
    for obj in index.objects:
        if obj.class_name != "person":
            continue
        # alone, and not cut by the frame's edge (there the body patch below is partly not the person)
        frame = next((f for f in range(obj.first_frame, obj.last_frame + 1)
                      if _alone(index, obj, f) and _inside(obj.boxes[f - obj.first_frame], index.width, index.height)),
                     None)
        if frame is None:
            continue
        x1, y1, x2, y2 = obj.boxes[frame - obj.first_frame]
        k = round((obj.original_time(frame, index.fps).timestamp() - origin) * 10)
        rows = slice(y1 + (y2 - y1) * 2 // 5, y1 + (y2 - y1) * 9 // 10)   # the body, below the head
        cols = slice(x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4)
        here = synopsis[frame][rows, cols].astype(float)
        right.append(np.abs(here - source[k][rows, cols]).mean())
        other = k + 30 if k + 30 < len(source) else k - 30                  # the same place 3 s off
        wrong.append(np.abs(here - source[other][rows, cols]).mean())
        assert right[-1] < 30, (obj.track_id, frame, right[-1])
    assert len(right) >= 10
    assert np.median(right) < 20 and np.median(wrong) > 2 * np.median(right), (np.median(right), np.median(wrong))


def test_a_click_finds_the_object_and_its_original_time(full: SynopsisResult) -> None:
    index = full.index
    clicked = 0
    for obj in index.objects:
        for frame in range(obj.first_frame, obj.last_frame + 1, 7):
            if not _alone(index, obj, frame):
                continue
            x1, y1, x2, y2 = obj.boxes[frame - obj.first_frame]
            hit = object_at(index, (frame + 0.5) / index.fps, (x1 + x2) / 2, (y1 + y2) / 2)
            assert hit is not None and hit.object.track_id == obj.track_id and hit.frame == frame
            assert obj.original_start <= hit.original_time <= obj.original_end
            clicked += 1
            break
    assert clicked >= len(index.objects) // 2


def test_persons_only_changes_which_objects_appear_and_nothing_else(
    vtest: VtestRun, full: SynopsisResult, persons: SynopsisResult
) -> None:
    everyone = {o.track_id: o for o in full.index.objects}
    people = {o.track_id: o for o in persons.index.objects}
    person_tracks = {s.track_id for s in vtest.summaries if s.class_name == "person"}
    assert {s.class_name for s in vtest.summaries} & VEHICLES, "vtest has parked vehicles: the filter must drop them"
    assert set(people) == person_tracks and not {o.class_name for o in people.values()} & VEHICLES
    for track_id, obj in people.items():
        same = everyone[track_id]
        assert (obj.original_start, obj.original_end) == (same.original_start, same.original_end)
        # the speed is the arrangement's (density-aware) choice; either way the whole object is shown once: its
        # first frame shows its start (within one frame at its speed) and its frames span its original time range
        for o in (obj, same):
            step = o.speed / full.index.fps
            assert 0.0 <= (o.first_frame_time - o.original_start).total_seconds() <= step + 1e-6
            shown_s = (len(o.boxes) - 1) * step
            assert abs(shown_s - (o.original_end - o.original_start).total_seconds()) <= 2 * step + 1e-6

    def partition(objects: dict[str, SynopsisObject]) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = {}
        for track_id, o in objects.items():
            groups.setdefault(o.group, set()).add(track_id)
        return {frozenset(g) for g in groups.values()}

    assert partition(people) == {g for g in partition(everyone) if g <= person_tracks}
    assert persons.index.duration_s <= vtest.source_s / 5 and persons.index.metrics.missing_crops == 0
    assert persons.synopsis_id != full.synopsis_id and persons.keys.video != full.keys.video
    assert vtest.store().exists(persons.keys.video) and vtest.store().exists(persons.keys.index)


# -- the worker and the CLI -------------------------------------------------------------------------------
def _step_until(worker: SynopsisWorker, done, timeout: float = 90.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the synopsis worker did not finish in time"
        worker.step()


def test_worker_builds_requests_from_the_tracks_topic(vtest: VtestRun) -> None:
    store, bus = vtest.store(), MemoryBus()
    with bus.producer() as producer:
        for s in vtest.summaries + vtest.summaries[:5]:  # at-least-once: some summaries delivered twice
            producer.send(TRACKS.name, s.to_json(), key=s.camera_id)
    settings = SETTINGS.model_copy(update={"worker": SETTINGS.worker.model_copy(update={"poll_s": 0.2})})
    worker = SynopsisWorker(TubelineConfig(), bus=bus, store=store, settings=settings)
    worker.setup()
    try:
        request = vtest.request(colours=("black", "grey", "white", "unknown", "blue", "red"), requested_by="flow")
        synopsis_id = submit_synopsis(store, request, settings)
        assert synopsis_status(store, CAMERA, synopsis_id, settings).state == "queued"  # type: ignore[union-attr]
        empty = SynopsisRequest(camera_id="nobody", start=request.start, end=request.end)
        empty_id = submit_synopsis(store, empty, settings)
        store.put(f"{settings.request_prefix}/garbage.json", b"{not a request", content_type="application/json")
        _step_until(worker, lambda: not list(store.list(settings.request_prefix + "/")))
    finally:
        worker.teardown()
    status = synopsis_status(store, CAMERA, synopsis_id, settings)
    assert status is not None and status.state == "done" and status.request == request
    index = SynopsisIndex.from_json(store.get(f"synopsis/{CAMERA}/{synopsis_id}.json"))
    wanted = {s.track_id for s in vtest.summaries if s.colour in request.colours}
    assert {o.track_id for o in index.objects} == wanted and len(index.objects) == len(wanted)
    assert store.exists(index.video_key)
    assert synopsis_status(store, "nobody", empty_id, settings).state == "empty"  # type: ignore[union-attr]
    assert store.exists(f"{settings.request_prefix}-invalid/garbage.json")
    first_video = store.stat(index.video_key)
    assert submit_synopsis(store, request, settings) == synopsis_id  # the same request, the same keys
    assert worker.poll_requests() == 1 and not list(store.list(settings.request_prefix + "/"))
    assert [i.key for i in store.list(f"synopsis/{CAMERA}/{synopsis_id}")] == [
        f"synopsis/{CAMERA}/{synopsis_id}.json", index.video_key, f"synopsis/{CAMERA}/{synopsis_id}.status.json"]
    assert store.stat(index.video_key).size == first_video.size  # rebuilt deterministically, overwritten


def test_worker_builds_one_synopsis_per_closed_window(vtest: VtestRun) -> None:
    store = vtest.store()
    settings = SETTINGS.model_copy(update={"worker": SETTINGS.worker.model_copy(update={
        "poll_s": 0.2, "window_cameras": (CAMERA,), "window_s": 60.0, "window_delay_s": 0.0, "windows_back": 4,
        "window_length_s": 10.0})})
    worker = SynopsisWorker(TubelineConfig(), bus=MemoryBus(), store=store, settings=settings,
                            source=MemoryTrackSource(vtest.summaries))
    worker.setup()
    now = max(s.ended_at for s in vtest.summaries) + timedelta(seconds=60)  # every window of the run has closed
    assert worker.ensure_windows(now) == 4 and worker.ensure_windows(now) == 0
    deadline = time.monotonic() + 120
    while list(store.list(settings.request_prefix + "/")):
        assert time.monotonic() < deadline, "the synopsis worker did not finish in time"
        worker.poll_requests()
    states = {r.synopsis_id(): synopsis_status(store, CAMERA, r.synopsis_id(), settings)
              for r in worker.window_requests(now)}
    assert {s.state for s in states.values()} <= {"done", "empty"}  # type: ignore[union-attr]
    done = [r for r in worker.window_requests(now) if states[r.synopsis_id()].state == "done"]  # type: ignore[union-attr]
    assert done, "the windows around the vtest run hold objects"
    shown = set()
    for request in done:
        index = SynopsisIndex.from_json(store.get(f"synopsis/{CAMERA}/{request.synopsis_id()}.json"))
        assert index.duration_s <= 10.0 + 1e-6
        for obj in index.objects:
            assert request.start <= obj.first_frame_time < request.end
            assert obj.clipped or (request.start <= obj.original_start and obj.original_end < request.end)
            shown.add(obj.track_id)
    assert shown == {s.track_id for s in vtest.summaries}  # every track in some window
    assert worker.built == len(done) and worker.failed == 0


def test_cli_builds_from_a_json_lines_file(vtest: VtestRun, tmp_path: Path) -> None:
    tracks = tmp_path / "tracks.jsonl"
    tracks.write_bytes(b"".join(s.to_json() + b"\n" for s in vtest.summaries))
    request = vtest.request()
    out = tmp_path / "synopsis.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "synopsis", "--camera", CAMERA, "--from", request.start.isoformat(),
         "--to", request.end.isoformat(), "--class", "person", "--length", "15", "--tracks", str(tracks),
         "--out", str(out)],
        capture_output=True, text=True, timeout=180, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TUBELINE_STORE__LOCAL__ROOT": str(vtest.store_root)},
    )
    assert result.returncode == 0, result.stderr
    assert "condensation x5.3" in result.stdout and "collision ratio" in result.stdout
    index = SynopsisIndex.from_json(out.with_suffix(".json").read_bytes())
    assert (index.width, index.height) == (768, 576)
    assert {o.class_name for o in index.objects} == {"person"}
    frames, codec, _ = _decode(out)
    assert codec == "h264" and len(frames) == index.frames
