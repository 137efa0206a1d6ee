"""``tubeline worker quality`` as its own process on the real Kafka-protocol broker and S3 server: frames in,
a "no signal" episode out on ``camera-health``, and ``curl /metrics`` on its health port parsed with the
Prometheus client's text parser (frames per camera, the stage latency, the worker's state)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.bus import open_bus
from pipeline.config import TubelineConfig
from pipeline.stack import free_port_block
from schemas.cameras import CameraHealth
from schemas.topics import CAMERA_HEALTH
from tests.detect_helpers import publish_frames, sample_frames

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CAMERA = "cam-qm"


def _env(config: TubelineConfig, port: int) -> dict[str, str]:
    s3 = config.store.s3
    return {
        **os.environ,
        "TUBELINE_BUS__BACKEND": "kafka",
        "TUBELINE_BUS__TOPIC_PREFIX": config.bus.topic_prefix,
        "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": config.bus.kafka.bootstrap_servers,
        "TUBELINE_BUS__KAFKA__SESSION_TIMEOUT_MS": "6000",
        "TUBELINE_STORE__BACKEND": "s3",
        "TUBELINE_STORE__S3__ENDPOINT": s3.endpoint,
        "TUBELINE_STORE__S3__BUCKET": s3.bucket,
        "TUBELINE_STORE__S3__ACCESS_KEY": s3.access_key.get_secret_value() if s3.access_key else "",
        "TUBELINE_STORE__S3__SECRET_KEY": s3.secret_key.get_secret_value() if s3.secret_key else "",
        "TUBELINE_RUNTIME__HEALTH_HOST": "127.0.0.1",
        "TUBELINE_RUNTIME__HEALTH_PORT": str(port),
        "TUBELINE_QUALITY__HOUSEKEEPING_INTERVAL_S": "0",
    }


def _scrape(port: int) -> dict[str, list]:
    out = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return {f.name: f.samples for f in text_string_to_metric_families(out)}


def test_quality_worker_process_diagnoses_and_serves_metrics(real_stack, unique_name: str, testdata: Path) -> None:
    config = real_stack.with_prefix(unique_name, bucket=unique_name)
    images = sample_frames(testdata / "vtest.avi", 30, step=10)  # one frame a second of the scene
    for i in range(12, 24):  # then twelve seconds of a blue "no signal" screen
        images[i] = np.zeros_like(images[i])
        images[i][:] = (160, 40, 0)
    bus = open_bus(config)
    publish_frames(bus, CAMERA, "qm1", images, fps=1.0)
    port = free_port_block(1)
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "quality"], env=_env(config, port),
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    events: list[CameraHealth] = []
    try:
        with bus.consumer([CAMERA_HEALTH.name], "watch") as watch:
            deadline = time.monotonic() + 120
            while not any(e.event == "fault_ended" for e in events) and time.monotonic() < deadline:
                assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
                events += [CameraHealth.from_json(m.value) for m in watch.poll(timeout=0.5)]
        faults = [(e.event, e.fault) for e in events if e.event != "summary"]
        assert faults == [("fault_started", "no_signal"), ("fault_ended", "no_signal")], faults
        started = next(e for e in events if e.event == "fault_started")
        assert started.thumbnail_key and started.verdict == "failed"

        deadline = time.monotonic() + 30
        while True:  # the fault ended at the 25th frame; the last ones may still be on their way
            families = _scrape(port)
            frames = {(s.labels["outcome"]): s.value for s in families["tubeline_frames"]
                      if s.labels.get("worker") == "quality" and s.labels.get("camera") == CAMERA}
            messages = [s.value for s in families["tubeline_messages"] if s.labels["worker"] == "quality"]
            # a batch is counted in tubeline_messages after it is handled and committed: under load all 30
            # frames can arrive in one batch, so wait for that count too
            if (frames.get("out", 0) >= 30 and sum(messages) >= frames.get("in", 0)) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # One frame a second: every frame is a sample. A redelivered frame (at-least-once) counts "in" again and
        # is skipped as already sampled ("dropped"), never diagnosed twice.
        assert frames["out"] == 30 and frames["in"] == 30 + frames.get("dropped", 0)
        latency = {s.name: s.value for s in families["tubeline_stage_latency_seconds"] if s.labels["stage"] == "quality"}
        assert latency["tubeline_stage_latency_seconds_count"] == 30
        state = {s.labels["state"]: s.value for s in families["tubeline_worker_state"] if s.labels["worker"] == "quality"}
        assert state["running"] == 1.0 and state["failed"] == 0.0
        assert sum(messages) == frames["in"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        bus.close()
