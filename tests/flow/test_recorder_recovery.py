"""A recorder killed (SIGKILL) in the middle of a segment loses no recorded video: the next start of the ingest
worker finds the open segment in its work folder, finishes it and stores it under the key it would have had.

The ingest worker runs in a child process (``python -m tests.flow.test_recorder_recovery``) that records a
real-time file in 2-s segments into a local store; the test kills it 1 s into its second segment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.recordings import load_index
from pipeline.store.local import LocalStore
from tests.conftest import REPO
from tests.peers.media import make_video
from workers.ingest.worker import IngestWorker

CAMERA = "rec-kill"
SEGMENT_S = 2.0


def _worker(root: Path, work: Path, video: Path) -> IngestWorker:
    camera = CameraSpec(id=CAMERA, kind="file", url=str(video), realtime=True, analysis_fps=1)
    ingest = IngestConfig(recordings={"segment_s": SEGMENT_S})  # type: ignore[arg-type]
    return IngestWorker(TubelineConfig(), bus=MemoryBus(), store=LocalStore(root), cameras=[camera],
                        ingest_config=ingest, tmp_dir=work)


def _index(root: Path) -> list:
    store = LocalStore(root)
    days = sorted({i.key.split("/")[2] for i in store.list(f"recordings/{CAMERA}/")})
    return [e for day in days for e in load_index(store, "recordings", CAMERA, day)]


def test_segment_open_at_a_kill_is_recovered_on_the_next_start(tmp_path: Path) -> None:
    video = make_video(tmp_path / "ten.mp4", seconds=10, gop=25)  # 25 fps, a keyframe every second
    root, work = tmp_path / "store", tmp_path / "work"
    child = subprocess.Popen([sys.executable, "-m", "tests.flow.test_recorder_recovery", str(root), str(work),
                              str(video)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _index(root):
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the first segment was never stored"
            time.sleep(0.05)
        time.sleep(1.0)  # one second into the second segment
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    stored = _index(root)
    assert len(stored) == 1
    leftovers = sorted(p.name for p in work.iterdir() if p.name.startswith("tubeline-rec-"))
    assert len(leftovers) == 2, leftovers  # the open segment and its sidecar

    worker = _worker(root, work, video)
    worker.setup()  # the next start: finishes and stores the leftover before any camera runs
    try:
        assert worker.recovered_segments == 1
    finally:
        worker.stop()
        worker.teardown()
    index = _index(root)
    assert len(index) == 2
    first, recovered = index
    assert recovered.start_dt == first.end_dt  # the timeline goes on where the first segment ended
    assert 0.5 <= recovered.duration_s <= 2.0 and recovered.keyframes >= 1
    local = tmp_path / "recovered.ts"
    LocalStore(root).download(recovered.key, local)
    with av.open(str(local)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == recovered.packets >= 12  # decodable, every packet up to the kill
    assert not [p for p in work.iterdir() if p.name.startswith("tubeline-rec-")]


if __name__ == "__main__":
    worker = _worker(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    worker.run(install_signals=False)
    print(json.dumps({"done": True}))
