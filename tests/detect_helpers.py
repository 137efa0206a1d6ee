"""Shared helpers for detect-worker tests: frames from the sample video, published like ingest does."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

from pipeline.bus import Bus, TopicSpec
from schemas.frames import FrameHeader
from schemas.topics import FRAMES
from workers.detect.worker import DetectWorker

BASE_TIME = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)


def sample_frames(video: Path, count: int, start: int = 0, step: int = 2) -> list:
    """``count`` frames of ``video`` from frame ``start``, every ``step``-th (vtest is 10 fps: step 2 = 5 fps)."""
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    index = 0
    while len(frames) < count:
        ok, image = cap.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(image)
        index += 1
    cap.release()
    return frames


def publish_frames(bus: Bus, camera: str, session: str, images: list, fps: float = 5.0) -> None:
    bus.ensure_topics([TopicSpec(FRAMES.name, 3)])
    with bus.producer() as producer:
        for seq, image in enumerate(images):
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            header = FrameHeader(
                camera_id=camera, session=session, sequence=seq,
                captured_at=BASE_TIME + timedelta(seconds=seq / fps), pts=seq / fps,
                width=image.shape[1], height=image.shape[0], source_codec="mpeg4", keyframe=seq == 0,
            )
            producer.send(FRAMES.name, jpeg.tobytes(), key=camera, headers=header.to_headers())
        producer.flush()


def run_until(worker: DetectWorker, frames: int, timeout: float = 120) -> None:
    """Run ``worker`` (set up, steps, drain, teardown) until it has handled ``frames`` frames."""
    worker.setup()
    try:
        deadline = time.monotonic() + timeout
        while worker.frames_done + (worker.dead_letter.count if worker.dead_letter else 0) < frames:
            assert time.monotonic() < deadline, f"only {worker.frames_done} of {frames} frames processed"
            worker.step()
        worker.drain()
    finally:
        worker.teardown()
