"""Detect-worker throughput and capture-to-detection latency (prints tables; not a test).

    .venv/bin/python benchmarks/detect/bench_detect.py [--frames 160] [--threads 1] [--load-s 30]

Throughput: the whole worker path (JPEG decode, NanoDet, tracker, crops, output messages, commits) over
the in-memory bus and a local store, with frames of vtest.avi from 4 cameras already queued; reported as
frames/s of wall time and frames per CPU-second (= frames/s per core), for detector batch sizes 1, 4, 8.
ONNX Runtime runs with ``--threads`` intra-op threads so the per-core figure is not inflated.

Latency: frames are published live at a fixed load (cameras × 5 fps, capture time = publish time) while
the worker runs; latency is the time from capture to the end of detection for each frame, p50/p99.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.bus import TopicSpec  # noqa: E402
from pipeline.bus.memory import MemoryBus  # noqa: E402
from pipeline.config import TubelineConfig  # noqa: E402
from pipeline.store.local import LocalStore  # noqa: E402
from schemas.frames import FrameHeader  # noqa: E402
from schemas.topics import FRAMES  # noqa: E402
from workers.detect.worker import DetectWorker  # noqa: E402

VIDEO = ROOT.parent / "shared" / "testdata" / "vtest.avi"


def jpeg_frames(count: int) -> list[bytes]:
    cap = cv2.VideoCapture(str(VIDEO))
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        ok, img = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        if i % 2 == 0:
            out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        i += 1
    return out


def config(batch: int, threads: int) -> TubelineConfig:
    return TubelineConfig.model_validate(
        {"detect": {"max_batch": batch, "max_wait_ms": 20}, "models": {"intra_op_threads": threads}}
    )


def send(producer, camera: str, seq: int, jpeg: bytes, when: datetime) -> None:
    header = FrameHeader(camera_id=camera, session="bench", sequence=seq, captured_at=when, pts=seq / 5,
                         width=768, height=576, source_codec="mpeg4", keyframe=False)
    producer.send(FRAMES.name, jpeg, key=camera, headers=header.to_headers())


def throughput(jpegs: list[bytes], batch: int, threads: int, cameras: int = 4) -> tuple[float, float]:
    bus = MemoryBus(default_partitions=4)
    bus.ensure_topics([TopicSpec(FRAMES.name, 4)])
    with bus.producer() as p:
        for seq, jpeg in enumerate(jpegs):
            send(p, f"cam-{seq % cameras}", seq // cameras, jpeg, datetime.now(UTC))
    with tempfile.TemporaryDirectory() as tmp:
        worker = DetectWorker(config(batch, threads), bus=bus, store=LocalStore(tmp))
        worker.setup()
        wall, cpu = time.perf_counter(), time.process_time()
        while worker.frames_done < len(jpegs):
            worker.step()
        worker.checkpoint()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        worker.teardown()
    return len(jpegs) / wall, len(jpegs) / cpu


def latency(jpegs: list[bytes], batch: int, threads: int, cameras: int, seconds: float) -> list[float]:
    bus = MemoryBus(default_partitions=4)
    bus.ensure_topics([TopicSpec(FRAMES.name, 4)])
    stop = threading.Event()

    def publisher() -> None:
        with bus.producer() as p:
            seq, start = 0, time.monotonic()
            while not stop.is_set():
                for cam in range(cameras):
                    send(p, f"cam-{cam}", seq, jpegs[(seq * cameras + cam) % len(jpegs)], datetime.now(UTC))
                seq += 1
                time.sleep(max(0.0, start + seq / 5 - time.monotonic()))

    with tempfile.TemporaryDirectory() as tmp:
        worker = DetectWorker(config(batch, threads), bus=bus, store=LocalStore(tmp))
        worker.setup()
        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        end = time.monotonic() + seconds
        warm = time.monotonic() + 3
        while time.monotonic() < end:
            if time.monotonic() < warm:
                worker.latencies.clear()
            worker.step()
        stop.set()
        thread.join()
        worker.teardown()
        return list(worker.latencies)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--load-s", type=float, default=30.0, help="seconds of live load for the latency test")
    ap.add_argument("--cameras", type=int, default=2, help="cameras at 5 fps for the latency test")
    args = ap.parse_args()
    jpegs = jpeg_frames(args.frames)
    throughput(jpegs[:16], 1, args.threads)  # warm-up: model load, page cache
    print(f"detect worker throughput, {args.frames} frames of 768x576 from 4 cameras, ORT threads={args.threads}")
    print(f"{'batch':>5} {'frames/s':>9} {'frames/s per core':>18}")
    for batch in (1, 4, 8):
        fps, per_core = throughput(jpegs, batch, args.threads)
        print(f"{batch:5d} {fps:9.1f} {per_core:18.1f}")
    lat = sorted(latency(jpegs, 4, args.threads, args.cameras, args.load_s))
    if not lat:
        print("no latency samples")
        return 1
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(f"\ncapture-to-detection latency at {args.cameras} cameras x 5 fps = {args.cameras * 5} frames/s,"
          f" batch 4, {len(lat)} frames: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
