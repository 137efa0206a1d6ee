"""Kill the detect worker mid-stream on the real broker and start another: no frame's detections are
lost and no track is summarised twice under different identities (keys match an uninterrupted run).
Both workers run under the detect store identity (on the local stack: crops and state/detect only), so the
hand-over goes through the JSON snapshot exactly as deployed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store import open_store
from pipeline.store.local import LocalStore
from schemas.detections import Detections as DetectionsMessage
from schemas.topics import DETECTIONS, TRACKS
from schemas.tracks import TrackSummary
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import publish_frames, sample_frames
from workers.detect.worker import DetectWorker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FRAMES = 80
SESSION = "failover1"


def _config(base: TubelineConfig) -> TubelineConfig:
    return with_overrides(base, {"detect.commit_interval_s": 0.5, "detect.max_batch": 4})


def _env(config: TubelineConfig) -> dict[str, str]:
    s3 = config.store.s3
    return {
        **os.environ,
        "TUBELINE_BUS__BACKEND": "kafka",
        "TUBELINE_BUS__TOPIC_PREFIX": config.bus.topic_prefix,
        "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": config.bus.kafka.bootstrap_servers,
        "TUBELINE_STORE__BACKEND": "s3",
        "TUBELINE_STORE__S3__ENDPOINT": s3.endpoint,
        "TUBELINE_STORE__S3__BUCKET": s3.bucket,
        "TUBELINE_STORE__S3__ACCESS_KEY": s3.access_key.get_secret_value() if s3.access_key else "",
        "TUBELINE_STORE__S3__SECRET_KEY": s3.secret_key.get_secret_value() if s3.secret_key else "",
        "TUBELINE_STORE__S3__CREATE_BUCKET": "true" if s3.create_bucket else "false",
        "TUBELINE_DETECT__COMMIT_INTERVAL_S": "0.5",
        "TUBELINE_DETECT__MAX_BATCH": "4",
    }


def _summaries(bus) -> list[TrackSummary]:
    with bus.consumer([TRACKS.name], f"check-{time.monotonic_ns()}") as c:
        first = c.poll(timeout=15.0)  # includes joining the group on a real broker
        return [TrackSummary.from_json(m.value) for m in first + drain(c, 2.0)]


def _reference(images, detector, tmp_path: Path, camera: str) -> set[str]:
    """Summary keys of an uninterrupted run over the same frames (in-memory bus)."""
    bus = MemoryBus(default_partitions=3)
    publish_frames(bus, camera, SESSION, images)
    worker = DetectWorker(_config(TubelineConfig()), bus=bus, store=LocalStore(tmp_path / "ref"),
                          detector=detector, close_on_stop=True)
    worker.setup()
    try:
        while worker.frames_done < len(images):
            worker.step()
        worker.drain()
    finally:
        worker.teardown()
    return {s.idempotency_key() for s in _summaries(bus)}


def test_killed_detect_worker_is_replaced_without_loss_or_duplicate_tracks(
    real_stack, unique_name: str, testdata: Path, tmp_path: Path
) -> None:
    from models.zoo import ModelZoo

    detector = ModelZoo(TubelineConfig().models).detector()
    camera = f"cam-fo-{unique_name}"  # the stack's bucket is shared: a camera of its own
    images = sample_frames(testdata / "vtest.avi", FRAMES)
    expected_keys = _reference(images, detector, tmp_path, camera)
    assert len(expected_keys) >= 5

    config = _config(real_stack.as_service("detect", unique_name))
    bus = open_bus(config)
    publish_frames(bus, camera, SESSION, images)

    first = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "detect"], env=_env(config), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    try:
        with bus.consumer([DETECTIONS.name], "watch") as watch:
            deadline = time.monotonic() + 120
            while len(seen) < FRAMES // 3 and time.monotonic() < deadline:
                assert first.poll() is None, first.stderr.read() if first.stderr else ""
                seen |= {DetectionsMessage.from_json(m.value).sequence for m in watch.poll(timeout=0.5)}
        assert len(seen) >= FRAMES // 3, "the first worker never got going"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert len(seen) < FRAMES, "the first worker finished before it could be killed"

    second = DetectWorker(config, bus=bus, store=open_store(config), detector=detector, close_on_stop=True)
    second.setup()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            second.step()
            state = second.states.get(camera)
            if state is not None and state.last_sequence == FRAMES - 1:
                break
        second.drain()
    finally:
        second.teardown()

    with bus.consumer([DETECTIONS.name], "verify") as verify:
        deadline = time.monotonic() + 60
        while seen != set(range(FRAMES)) and time.monotonic() < deadline:
            seen |= {DetectionsMessage.from_json(m.value).sequence for m in verify.poll(timeout=1.0)}
    assert seen == set(range(FRAMES)), f"frames without detections: {sorted(set(range(FRAMES)) - seen)}"
    by_key: dict[str, set[bytes]] = defaultdict(set)
    for summary in _summaries(bus):
        by_key[summary.idempotency_key()].add(summary.to_json())
    assert set(by_key) == expected_keys, "track identities differ from an uninterrupted run"
    assert all(len(payloads) == 1 for payloads in by_key.values()), "a redelivered summary changed content"
