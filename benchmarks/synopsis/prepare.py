"""Inputs of the synopsis benchmark: vtest.avi through the real pipeline, and a one-hour sequence built from it.

vtest (79.5 s, 768x576, 10 fps): the embedded pipeline (ingest → detect → tracks) runs on the file; its
recordings stay in ``{work}/vtest/store`` and its track summaries are written to ``{work}/vtest/tracks.jsonl``.

One hour ("looping and shifting"): FFmpeg concatenates vtest.avi 46 times without re-encoding
(46 × 79.5 s = 3657 s); ingest's own :class:`pipeline.recordings.Recorder` records it into
``{work}/hour/store`` as camera ``vtest-hour`` in 60-s segments, on a clock that starts where the vtest run's
recording started. The hour's tracks are vtest's tracks replicated once per loop, each copy shifted by
``k × 79.5 s`` and renamed ``vtest-hour:{session}:L{k}-{n}`` — detection is not re-run for an hour, but
every pixel of the synopsis comes from the recorded hour. Both steps are skipped when their outputs exist.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av

import workers.runner.embedded
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec, RecordingsConfig
from pipeline.recordings import load_index
from pipeline.store.local import LocalStore
from schemas.topics import TRACKS
from schemas.tracks import TrackSummary
from workers.ingest.recorder import Recorder
from workers.ingest.sources.file import FileSource

VTEST_CAMERA = "vtest"
HOUR_CAMERA = "vtest-hour"
HOUR_LOOPS = 46


@dataclass
class Prepared:
    camera: str
    store_root: Path
    tracks: Path
    summaries: list[TrackSummary]
    start: datetime
    end: datetime

    @property
    def source_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _read_tracks(path: Path) -> list[TrackSummary]:
    return [TrackSummary.from_json(line) for line in path.read_bytes().splitlines() if line.strip()]


def _recorded_span(store: LocalStore, camera: str) -> tuple[datetime, datetime]:
    days = sorted({info.key.split("/")[2] for info in store.list(f"recordings/{camera}/")})
    segments = [s for day in days for s in load_index(store, "recordings", camera, day)]
    return min(s.start_dt for s in segments), max(s.end_dt for s in segments)


def prepare_vtest(work: Path, video: Path, log=print) -> Prepared:  # noqa: ANN001
    """vtest.avi through the embedded pipeline (once): recordings + track summaries."""
    root, tracks = work / "vtest" / "store", work / "vtest" / "tracks.jsonl"
    if not tracks.exists():
        log(f"running the pipeline on {video} ...")
        config = TubelineConfig.model_validate({
            "store": {"local": {"root": str(root)}},
            "ingest": {"overflow": "block", "analysis_fps": 5.0},
        })
        bus = MemoryBus(default_partitions=config.bus.default_partitions)
        camera = CameraSpec(id=VTEST_CAMERA, kind="file", device_type="file", url=str(video), realtime=False)
        started = time.monotonic()
        result = workers.runner.embedded.run_embedded(config, [camera], timeout_s=1200, bus=bus)
        values = workers.runner.embedded.read_topic(bus, TRACKS.name)
        tracks.write_bytes(b"".join(v + b"\n" for v in values))
        log(f"  {result.frames_detected} frames analysed, {len(values)} track summaries in "
            f"{time.monotonic() - started:.1f} s")
    store = LocalStore(root)
    start, end = _recorded_span(store, VTEST_CAMERA)
    return Prepared(VTEST_CAMERA, root, tracks, _read_tracks(tracks), start, end)


def _shifted(summary: TrackSummary, loop: int, shift: timedelta) -> TrackSummary:
    camera, session, number = summary.track_id.split(":")
    return summary.model_copy(update={
        "track_id": f"{HOUR_CAMERA}:{session}:L{loop}-{number}", "camera_id": HOUR_CAMERA,
        "started_at": summary.started_at + shift, "ended_at": summary.ended_at + shift,
        "best_crop_key": None,
    })


def _record_hour(video: Path, store: LocalStore, start: datetime, work: Path, log=print) -> None:  # noqa: ANN001
    concat = work / "hour" / "vtest-hour.avi"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("".join(f"file '{video.resolve()}'\n" for _ in range(HOUR_LOOPS)))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing.name, "-c", "copy",
                    str(concat)], check=True, timeout=600)
    Path(listing.name).unlink()
    started = time.monotonic()
    recorder = Recorder(HOUR_CAMERA, store, RecordingsConfig(segment_s=60, queue_size=100_000))
    source = FileSource(HOUR_CAMERA, concat, realtime=False, start=start)
    info = source.open()
    recorder.start()
    recorder.begin(info)
    try:
        for item in source.items():
            recorder.offer(item)
        recorder.close(timeout=1800)
    finally:
        source.close()
    concat.unlink()
    log(f"  recorded {recorder.segments_written} segments ({recorder.dropped} packets dropped) in "
        f"{time.monotonic() - started:.1f} s")


def prepare_hour(work: Path, video: Path, vtest: Prepared, log=print) -> Prepared:  # noqa: ANN001
    """The one-hour recording (vtest looped) and vtest's tracks replicated with time shifts (once)."""
    root, tracks = work / "hour" / "store", work / "hour" / "tracks.jsonl"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        loop_s = float(stream.frames / stream.average_rate)
    if not tracks.exists():
        log(f"recording one hour ({HOUR_LOOPS} x {loop_s} s of {video.name}) ...")
        root.mkdir(parents=True, exist_ok=True)
        _record_hour(video, LocalStore(root), vtest.start, work, log)
        copies = [_shifted(s, k, timedelta(seconds=k * loop_s)) for k in range(HOUR_LOOPS) for s in vtest.summaries]
        tracks.write_bytes(b"".join(s.to_json() + b"\n" for s in copies))
        (work / "hour" / "README.json").write_text(json.dumps(
            {"loops": HOUR_LOOPS, "loop_s": loop_s, "tracks": len(copies), "camera": HOUR_CAMERA}, indent=1))
    store = LocalStore(root)
    start, end = _recorded_span(store, HOUR_CAMERA)
    end = min(end, start + timedelta(hours=1))
    return Prepared(HOUR_CAMERA, root, tracks, _read_tracks(tracks), start, end)
