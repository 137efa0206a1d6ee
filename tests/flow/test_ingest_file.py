"""Flow tests of the ingest worker on files over the in-memory bus and the local store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.recordings import cut_clip, load_index
from pipeline.store.local import LocalStore
from schemas.cameras import CameraStatus
from schemas.frames import FrameHeader
from schemas.topics import CAMERA_STATUS, FRAMES
from tests.peers.media import count_frames, make_video, probe_duration
from workers.ingest.worker import IngestWorker

JPEG = b"\xff\xd8\xff"


def drain(bus: MemoryBus, topic: str) -> list:
    consumer = bus.consumer([topic], "test-" + topic)
    out = []
    while batch := consumer.poll(timeout=0.2, max_records=10_000):
        out.extend(batch)
    consumer.close()
    return out


def statuses(bus: MemoryBus) -> list[CameraStatus]:
    return [CameraStatus.from_json(m.value) for m in drain(bus, CAMERA_STATUS.name)]


def run_to_end(worker: IngestWorker, timeout: float = 60.0) -> None:
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(10)
        pytest.fail("ingest worker did not finish a file by itself")


def test_vtest_file_publishes_every_sampled_frame_with_headers(tmp_path: Path, testdata: Path) -> None:
    bus, store = MemoryBus(), LocalStore(tmp_path / "store")
    cam = CameraSpec(id="vtest", kind="file", url=str(testdata / "vtest.avi"), realtime=False, record=False)
    ingest = IngestConfig(overflow="block", analysis_fps=5)
    worker = IngestWorker(TubelineConfig(), bus=bus, store=store, cameras=[cam], ingest_config=ingest)
    run_to_end(worker)

    frames = drain(bus, FRAMES.name)
    headers = [FrameHeader.from_headers(m.headers) for m in frames]
    # 795 frames at 10 fps = 79.5 s; at 5 fps every second frame is kept.
    assert len(frames) == 398
    assert [h.sequence for h in headers] == list(range(398))
    assert all(m.key == b"vtest" and m.value.startswith(JPEG) for m in frames)
    assert {(h.width, h.height, h.source_codec) for h in headers} == {(768, 576, "msmpeg4")}
    times = [h.captured_at for h in headers]
    assert all(b - a == timedelta(milliseconds=200) for a, b in zip(times, times[1:], strict=False))
    assert headers[-1].pts == pytest.approx(79.4)
    events = statuses(bus)
    assert [e.event for e in events][:1] == ["online"]
    assert events[-1].event == "offline" and events[-1].reason == "eof"
    assert "795 frames" in events[-1].detail


def test_resize_fit_keeps_aspect_and_never_upscales(tmp_path: Path, testdata: Path) -> None:
    bus, store = MemoryBus(), LocalStore(tmp_path / "store")
    cam = CameraSpec(id="small", kind="file", url=str(testdata / "vtest.avi"), realtime=False, record=False,
                     analysis_fps=1)
    ingest = IngestConfig(overflow="block", resize={"mode": "fit", "max_width": 384, "max_height": 384})
    run_to_end(IngestWorker(TubelineConfig(), bus=bus, store=store, cameras=[cam], ingest_config=ingest))
    sizes = {(FrameHeader.from_headers(m.headers).width, FrameHeader.from_headers(m.headers).height)
             for m in drain(bus, FRAMES.name)}
    assert sizes == {(384, 288)}


def test_realtime_pacing_and_drop_oldest_under_a_slow_consumer(tmp_path: Path, testdata: Path) -> None:
    """Real-time file at 10 fps, analysis at 10 fps, a publisher that takes 0.3 s per frame: the queue
    stays bounded, drops are counted, and the freshest frames get through."""
    bus, store = MemoryBus(), LocalStore(tmp_path / "store")
    cam = CameraSpec(id="slow", kind="file", url=str(testdata / "vtest.avi"), realtime=True, record=False,
                     analysis_fps=10)
    ingest = IngestConfig(frame_queue_size=2, overflow="drop_oldest")
    worker = IngestWorker(TubelineConfig(), bus=bus, store=store, cameras=[cam], ingest_config=ingest)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "slow" not in worker.runners and time.monotonic() < deadline:
            time.sleep(0.05)
        runner = worker.runner("slow")
        real_publish = runner.publisher.publish

        def slow_publish(*args: object) -> None:
            time.sleep(0.3)
            real_publish(*args)

        runner.publisher.publish = slow_publish  # type: ignore[method-assign]
        time.sleep(3.0)
        snap = runner.snapshot()
        assert len(runner.publisher.queue) <= 2
        assert runner.publisher.queue.high_water <= 2
    finally:
        worker.stop()
        thread.join(15)
    # ~30 frames decoded in 3 s of real time (pacing), few published, the rest dropped and counted.
    assert 20 <= snap.frames_in <= 40
    assert snap.frames_out <= 12
    assert snap.dropped >= 10
    assert snap.frames_out + snap.dropped + 2 >= snap.frames_in - 2


def test_recording_segments_index_and_clip_across_a_border(tmp_path: Path) -> None:
    video = make_video(tmp_path / "gop1s.mp4", seconds=12, gop=25)  # 25 fps, keyframe every second
    bus, store = MemoryBus(), LocalStore(tmp_path / "store")
    cam = CameraSpec(id="rec", kind="file", url=str(video), realtime=False)
    ingest = IngestConfig(overflow="block", recordings={"segment_s": 4})
    run_to_end(IngestWorker(TubelineConfig(), bus=bus, store=store, cameras=[cam], ingest_config=ingest,
                            tmp_dir=tmp_path))
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    index = load_index(store, "recordings", "rec", day)
    if not index:  # the run straddled midnight UTC
        index = load_index(store, "recordings", "rec", (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d"))
    assert [e.duration_s for e in index] == pytest.approx([4.0, 4.0, 4.0])
    assert [e.packets for e in index] == [100, 100, 100]
    assert all(e.keyframes == 4 and e.codec == "h264" and not e.after_gap for e in index)
    for a, b in zip(index, index[1:], strict=False):
        assert a.end_dt == b.start_dt  # contiguous
    assert all(store.exists(e.key) for e in index)

    t0 = index[0].start_dt
    clip = tmp_path / "clip.mp4"
    result = cut_clip(store, "rec", t0 + timedelta(seconds=3.5), t0 + timedelta(seconds=9.5), clip)
    assert result.segments == 3
    # FFmpeg reads it; duration is 6 s plus at most one GOP (1 s) before the start.
    duration = probe_duration(clip)
    assert 6.0 - 0.1 <= duration <= 7.0 + 0.1
    assert count_frames(clip) == result.packets == pytest.approx(duration * 25, abs=2)

    with pytest.raises(LookupError):
        cut_clip(store, "rec", t0 - timedelta(hours=2), t0 - timedelta(hours=1), tmp_path / "none.mp4")


def test_looping_file_keeps_timestamps_monotonic(tmp_path: Path) -> None:
    video = make_video(tmp_path / "short.mp4", seconds=2, gop=25)
    bus, store = MemoryBus(), LocalStore(tmp_path / "store")
    cam = CameraSpec(id="loop", kind="file", url=str(video), realtime=False, loop=True, record=False)
    worker = IngestWorker(TubelineConfig(), bus=bus, store=store, cameras=[cam],
                          ingest_config=IngestConfig(overflow="block"))
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "loop" in worker.runners and worker.runner("loop").publisher.counters.published >= 40:
                break
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(15)
    headers = [FrameHeader.from_headers(m.headers) for m in drain(bus, FRAMES.name)]
    assert len(headers) >= 40  # 4 loops of 10 frames
    pts = [h.pts for h in headers]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
    assert pts[25] == pytest.approx(5.0)
