"""The detect worker closes a camera's tracks after ``idle_s`` without frames only when the camera is silent, not
when its frames wait in the partition for this worker (a backlog, or the consumer serving another partition
first): closing them then split a track wherever the worker fell behind, and a replay from the snapshot did not
split it there (the scale-out test saw one idempotency key with two different track rows)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.unit.test_detect_crops import Run, centred


def test_tracks_stay_open_while_the_cameras_frames_wait_and_close_once_it_is_silent(tmp_path: Path) -> None:
    script = [[("car", centred(120), 0.8)] for _ in range(12)]  # a car in every frame: one track, never lost
    run = Run(script, tmp_path, {"detect.max_batch": 4, "detect.max_wait_ms": 1})
    worker = run.worker()
    worker.setup()
    try:
        while worker.frames_done < 4:
            worker.step()
        assert worker.frames_done < 12 and worker.states["cam"].tracks
        worker.last_frame_at["cam"] -= 3600  # as if an hour had passed since its last frame was handled
        worker._close_idle()
        assert worker.summaries == 0 and worker.states["cam"].tracks  # its frames are waiting: not silent

        deadline = time.monotonic() + 60
        while worker.frames_done < 12:
            assert time.monotonic() < deadline
            worker.step()
        worker.last_frame_at["cam"] -= 3600
        worker._close_idle()  # read to the end and silent: closed
        assert worker.summaries == 1 and not worker.states["cam"].tracks
        worker.drain()
    finally:
        worker.teardown()
    [summary] = run.summaries
    [whole] = Run(script, tmp_path / "reference").all().summaries  # one run through, closed at the end
    assert summary.path == whole.path and len(summary.path) >= 11 and summary.closed_reason == "lost"
