"""Flow tests of the recorder on files read faster than real time (local store).

Two things are checked here:

* The recorder keeps muxing packets after the source closed its demuxer (end of file while packets are
  still queued behind a slow upload, a looping file reopened). It used to open later segments from the
  demuxer's stream, freed by then, and crashed the process (SIGSEGV). The scenarios that crashed run in a
  child process (``python -m tests.flow.test_ingest_recorder SCENARIO ...``), so a regression fails the
  test with the signal instead of killing the test session.
* Segments of a file follow its media time, however fast it is read: boundaries and UTC starts come from
  capture times derived from pts, not from the wall clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec, IngestConfig, RecordingsConfig
from pipeline.recordings import SegmentEntry, cut_clip, load_index
from pipeline.store.local import LocalStore
from tests.conftest import REPO, TESTDATA
from tests.peers.media import make_video
from workers.ingest.recorder import Recorder
from workers.ingest.sources.file import FileSource
from workers.ingest.worker import IngestWorker

CAMERA = "rec"
SEGMENT_S = 5.0
UPLOAD_DELAY_S = 0.5  # per segment: the reader reaches the end of the file while the recorder still uploads


# -- child-process scenarios ----------------------------------------------------------------------
class _SlowStore(LocalStore):
    """A local store whose segment uploads take ``delay`` seconds (an object store over a slow link)."""

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(root)
        self.delay = delay

    def put(self, key: str, data: Any, **kw: Any) -> Any:
        if not key.endswith(".json"):
            time.sleep(self.delay)
        return super().put(key, data, **kw)


def _scenario_worker(root: str, video: str, segment_s: str, delay: str, queue_size: str = "1024",
                     overflow: str = "block") -> dict[str, Any]:
    """The ingest worker on a file at full speed, recording through a slow store."""
    store = _SlowStore(Path(root), float(delay))
    cam = CameraSpec(id=CAMERA, kind="file", url=video, realtime=False, analysis_fps=1)
    ingest = IngestConfig(overflow=overflow, recordings={"segment_s": float(segment_s),  # type: ignore[arg-type]
                                                         "queue_size": int(queue_size)})
    worker = IngestWorker(TubelineConfig(), bus=MemoryBus(), store=store, cameras=[cam], ingest_config=ingest,
                          tmp_dir=Path(root).parent)
    started = time.monotonic()
    worker.run(install_signals=False)
    return {"wall_s": time.monotonic() - started, "record_drops": worker.final_totals[CAMERA].record_drops}


def _scenario_closed_first(root: str, video: str, segment_s: str) -> dict[str, Any]:
    """Every packet queued and the source closed before the recorder thread muxes the first one."""
    recorder = Recorder(CAMERA, LocalStore(Path(root)), RecordingsConfig(segment_s=float(segment_s),
                                                                         queue_size=100_000),
                        tmp_dir=Path(root).parent)
    source = FileSource(CAMERA, video, realtime=False)
    recorder.begin(source.open())
    packets = 0
    for item in source.items():
        recorder.offer(item)
        packets += item.packet is not None
    source.close()
    recorder.start()
    recorder.close()
    return {"packets": packets, "segments": recorder.segments_written, "dropped": recorder.dropped}


def _scenario_loop(root: str, video: str, segment_s: str, until_s: str) -> dict[str, Any]:
    """A looping file (reopened at each end) recorded while it plays, until ``until_s`` of media."""
    recorder = Recorder(CAMERA, LocalStore(Path(root)), RecordingsConfig(segment_s=float(segment_s),
                                                                         queue_size=100_000),
                        tmp_dir=Path(root).parent)
    source = FileSource(CAMERA, video, realtime=False, loop=True)
    recorder.start()
    recorder.begin(source.open())
    packets = 0
    for item in source.items():
        if item.pts >= float(until_s):
            break
        recorder.offer(item)
        packets += item.packet is not None
    source.close()
    recorder.close()
    return {"packets": packets, "loops": source.loops, "dropped": recorder.dropped}


_SCENARIOS = {"worker": _scenario_worker, "closed-first": _scenario_closed_first, "loop": _scenario_loop}


def run_scenario(name: str, *args: object) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "tests.flow.test_ingest_recorder", name,
                           *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"scenario {name} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- helpers ----------------------------------------------------------------------------------------
@dataclass
class SourceFacts:
    frames: int
    fps: float
    keyframes: list[float]  # pts in seconds

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def source_facts(path: Path) -> SourceFacts:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        keys = [float(p.pts * tb) for p in container.demux(stream) if p.size and p.is_keyframe]
        container.seek(0)
        frames = sum(1 for _ in container.decode(stream))
        return SourceFacts(frames, float(stream.average_rate), keys)


def expected_starts(keyframes: list[float], segment_s: float) -> list[float]:
    """The segment rule on the media timeline: a new segment at the first keyframe ≥ segment_s after the last."""
    starts = [keyframes[0]]
    for key in keyframes[1:]:
        if key - starts[-1] >= segment_s:
            starts.append(key)
    return starts


def recorded_index(store: LocalStore) -> list[SegmentEntry]:
    days = sorted({info.key.split("/")[2] for info in store.list(f"recordings/{CAMERA}/")})
    return sorted((e for day in days for e in load_index(store, "recordings", CAMERA, day)), key=lambda e: e.start)


def decode_count(store: LocalStore, entry: SegmentEntry, tmp: Path) -> int:
    local = tmp / ("segment" + Path(entry.key).suffix)
    store.download(entry.key, local)
    with av.open(str(local)) as container:
        return sum(1 for _ in container.decode(video=0))


def check_media_timeline(index: list[SegmentEntry], facts: SourceFacts, segment_s: float) -> None:
    """Starts at the keyframes the rule picks, UTC following pts, contiguous, lengths summing to the media."""
    starts = expected_starts(facts.keyframes, segment_s)
    assert [e.start_pts for e in index] == pytest.approx(starts)
    t0 = index[0].start_dt
    assert [(e.start_dt - t0).total_seconds() for e in index] == pytest.approx([s - starts[0] for s in starts])
    for a, b in zip(index, index[1:], strict=False):
        assert a.end_dt == b.start_dt
    assert sum(e.duration_s for e in index) == pytest.approx(facts.duration_s)
    gop = max(b - a for a, b in zip(facts.keyframes, facts.keyframes[1:], strict=False))
    assert all(segment_s <= e.duration_s <= segment_s + gop for e in index[:-1])
    assert 0 < index[-1].duration_s <= segment_s + gop


# -- vtest.avi through the ingest worker ------------------------------------------------------------
@dataclass
class VtestRecording:
    store: LocalStore
    index: list[SegmentEntry]
    facts: SourceFacts
    run: dict[str, Any]


@pytest.fixture(scope="module")
def vtest(tmp_path_factory: pytest.TempPathFactory) -> VtestRecording:
    video = TESTDATA / "vtest.avi"
    root = tmp_path_factory.mktemp("recorder-vtest") / "store"
    run = run_scenario("worker", root, video, SEGMENT_S, UPLOAD_DELAY_S)
    store = LocalStore(root)
    return VtestRecording(store, recorded_index(store), source_facts(video), run)


def test_vtest_at_full_speed_in_short_segments_follows_media_time(vtest: VtestRecording) -> None:
    facts, index = vtest.facts, vtest.index
    # Read far faster than real time (even with the slow uploads): a wall-clock rule would cut ≤ 1 segment.
    assert vtest.run["wall_s"] < facts.duration_s / 4
    assert vtest.run["record_drops"] == 0
    assert len(index) == len(expected_starts(facts.keyframes, SEGMENT_S)) > 1
    check_media_timeline(index, facts, SEGMENT_S)
    assert sum(e.packets for e in index) == facts.frames
    assert all(e.keyframes >= 1 and e.codec == "msmpeg4" and e.key.endswith(".mkv") and not e.after_gap
               for e in index)


def test_vtest_segments_each_decode_and_add_up_to_the_source_frames(vtest: VtestRecording,
                                                                    tmp_path: Path) -> None:
    counts = [decode_count(vtest.store, e, tmp_path) for e in vtest.index]
    assert counts == [e.packets for e in vtest.index]
    assert sum(counts) == vtest.facts.frames


def _gray_frames(path: Path, size: tuple[int, int] = (192, 144)) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.reformat(width=size[0], height=size[1], format="gray").to_ndarray().astype(np.float32)
                         for f in container.decode(video=0)])


def test_clip_across_a_segment_border_shows_the_source_frames(vtest: VtestRecording, tmp_path: Path) -> None:
    from workers.api.clips import make_clip

    index, fps = vtest.index, vtest.facts.fps
    border = index[1].start_dt
    t0 = index[0].start_dt
    start, end = border - timedelta(seconds=5), border + timedelta(seconds=5)
    out = tmp_path / "clip.mp4"
    first, last, transcoded, codec = make_clip(vtest.store, CAMERA, start, end, out)
    assert (transcoded, codec) == (True, "msmpeg4")  # MS-MPEG4 does not go into an MP4: decoded, re-encoded
    assert (first, last) == (start, end)
    clip = _gray_frames(out)
    assert len(clip) == round(10 * fps)
    # The clip's frames are the source's frames at its media time, across the border: compare with the source
    # at the clip's offset and at offsets one second either side.
    source = _gray_frames(TESTDATA / "vtest.avi")
    offset = round((start - t0).total_seconds() * fps)

    def mad(shift: int) -> float:
        return float(np.abs(clip - source[offset + shift:offset + shift + len(clip)]).mean())

    right, shifted = mad(0), min(mad(-round(fps)), mad(round(fps)))
    assert right < 0.5 * shifted, (right, shifted)

    # Remuxing cannot carry MS-MPEG4 into MP4 or MPEG-TS: said, not written as a file without video.
    for suffix in (".mp4", ".ts"):
        with pytest.raises(ValueError, match="msmpeg4"):
            cut_clip(vtest.store, CAMERA, start, end, tmp_path / f"remux{suffix}")


@pytest.mark.parametrize("overflow", ["block", "drop_oldest"])
def test_a_file_read_faster_than_uploads_is_recorded_whole_when_ingest_blocks(tmp_path: Path, overflow: str) -> None:
    """A 32-packet recorder queue behind 1-s uploads: with ``overflow: block`` (offline files) the reader waits
    and every packet is recorded; a live source (``drop_oldest``) never waits, loses packets and says so."""
    video = TESTDATA / "vtest.avi"
    root = tmp_path / "store"
    run = run_scenario("worker", root, video, SEGMENT_S, 1.0, 32, overflow)
    store = LocalStore(root)
    index = recorded_index(store)
    facts = source_facts(video)
    if overflow == "block":
        assert run["record_drops"] == 0
        assert sum(e.packets for e in index) == facts.frames
        assert not any(e.after_gap for e in index)
        check_media_timeline(index, facts, SEGMENT_S)
    else:
        assert run["record_drops"] > 0
        assert sum(e.packets for e in index) + run["record_drops"] == facts.frames
        assert sum(e.duration_s for e in index) < facts.duration_s - 1.0


# -- the scenarios that crashed -------------------------------------------------------------------------
def test_recorder_muxes_packets_still_queued_after_the_source_closed(tmp_path: Path) -> None:
    video = TESTDATA / "vtest.avi"
    root = tmp_path / "store"
    result = run_scenario("closed-first", root, video, SEGMENT_S)
    facts = source_facts(video)
    assert result == {"packets": facts.frames, "segments": len(expected_starts(facts.keyframes, SEGMENT_S)),
                      "dropped": 0}
    store = LocalStore(root)
    index = recorded_index(store)
    check_media_timeline(index, facts, SEGMENT_S)
    assert sum(decode_count(store, e, tmp_path) for e in index) == facts.frames


def test_looping_file_records_across_reopens_and_clips_across_the_loop(tmp_path: Path) -> None:
    video = make_video(tmp_path / "three.mp4", seconds=3, gop=25)  # 25 fps, a keyframe every second
    facts = source_facts(video)
    loops, segment_s = 4, 2.0
    root = tmp_path / "store"
    result = run_scenario("loop", root, video, segment_s, loops * facts.duration_s)
    assert result == {"packets": loops * facts.frames, "loops": loops, "dropped": 0}
    played = SourceFacts(loops * facts.frames, facts.fps,
                         [k + n * facts.duration_s for n in range(loops) for k in facts.keyframes])
    store = LocalStore(root)
    index = recorded_index(store)
    assert len(index) == round(loops * facts.duration_s / segment_s)
    check_media_timeline(index, played, segment_s)
    assert [decode_count(store, e, tmp_path) for e in index] == [e.packets for e in index]
    assert sum(e.packets for e in index) == played.frames

    # A remuxed clip from 2.5 s before the first loop's end to 2.5 s after it: starts at the keyframe before
    # its start (1 s GOP), crosses the reopen and two segment borders.
    t0 = index[0].start_dt
    end_of_pass = t0 + timedelta(seconds=facts.duration_s)
    start, end = end_of_pass - timedelta(seconds=2.5), end_of_pass + timedelta(seconds=2.5)
    clip = cut_clip(store, CAMERA, start, end, tmp_path / "loop.mp4")
    assert clip.segments == 3
    assert clip.start == t0 + timedelta(seconds=max(k for k in played.keyframes if k <= (start - t0).total_seconds()))
    assert end <= clip.end < end + timedelta(seconds=1 / facts.fps)  # to the end of the last frame before `end`
    with av.open(str(tmp_path / "loop.mp4")) as container:
        stream = container.streams.video[0]
        pts = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    assert len(pts) == clip.packets == round(clip.duration_s * facts.fps)
    assert all(b - a == pytest.approx(1 / facts.fps, abs=2e-3) for a, b in zip(pts, pts[1:], strict=False))


def _main(argv: list[str]) -> None:
    result = _SCENARIOS[argv[0]](*argv[1:])
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    _main(sys.argv[1:])
