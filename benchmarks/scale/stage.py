"""One stage of the scale harness in its own process (so its CPU is its own): ingest, detect or index.

    python benchmarks/scale/stage.py NAME --warmup-s 8 --measure-s 20 --out result.json [--clips a.mp4 ...]

The bus and the store come from the environment (``LocalStack.env(as_=NAME)``: the real broker and S3, the
service's own identity). After ``--warmup-s`` the stage starts counting: process CPU (user + system, all
threads), its counters, and each event's latency (capture → detected for detect; capture → indexed per
record kind for index, taken where the indexer reports it, ``pipeline.metrics.observe_latency``). It then
stops the worker and writes one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline import metrics  # noqa: E402
from pipeline.bus import open_bus  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.config.ingest import CameraSpec, IngestConfig  # noqa: E402
from pipeline.store import open_store  # noqa: E402

EVENTS: list[tuple[float, str, float]] = []  # (monotonic when seen, stage, latency s)
_observe = metrics.observe_latency


def _recording(stage: str, event_time: datetime, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    EVENTS.append((time.monotonic(), stage, (now - event_time).total_seconds()))
    _observe(stage, event_time, now)


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def build(name: str, clips: list[str], fps: float):  # noqa: ANN201
    config = load_config()
    bus, store = open_bus(config), open_store(config)
    if name == "ingest":
        from workers.ingest.worker import IngestWorker

        cams = [CameraSpec(id=f"scale-{i:03d}", kind="rtsp", url=c) if c.startswith("rtsp://") else
                CameraSpec(id=f"scale-{i:03d}", kind="file", url=c, realtime=True, loop=True)
                for i, c in enumerate(clips)]
        ingest = IngestConfig(analysis_fps=fps, recordings={"enabled": False})
        return IngestWorker(config, bus=bus, store=store, cameras=cams, ingest_config=ingest)
    from workers.runner.registry import make_worker

    return make_worker(name, config, bus=bus, store=store)


def counters(name: str, worker) -> dict[str, float]:  # noqa: ANN001
    if name == "ingest":
        snaps = [runner.snapshot() for _, runner in worker.runners.values()]
        return {"frames_in": sum(s.frames_in for s in snaps), "frames_out": sum(s.frames_out for s in snaps),
                "dropped": sum(s.dropped for s in snaps)}
    if name == "detect":
        return {"frames": worker.frames_done, "crops": worker.crops}
    return {"processed": getattr(worker, "processed", 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=("ingest", "detect", "index"))
    ap.add_argument("--warmup-s", type=float, default=8.0)
    ap.add_argument("--measure-s", type=float, default=20.0)
    ap.add_argument("--clips", nargs="*", default=[])
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    metrics.observe_latency = _recording  # type: ignore[assignment]
    worker = build(args.name, args.clips, args.fps)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    time.sleep(args.warmup_s)
    start, cpu0, c0 = time.monotonic(), cpu_s(), counters(args.name, worker)
    if args.name == "detect":
        worker.latencies.clear()
    time.sleep(args.measure_s)
    wall, cpu, c1 = time.monotonic() - start, cpu_s() - cpu0, counters(args.name, worker)
    latencies: dict[str, list[float]] = {}
    if args.name == "detect":
        latencies["detected"] = list(worker.latencies)
    for at, stage, value in EVENTS:
        if at >= start:
            latencies.setdefault(stage, []).append(value)
    worker.stop()
    thread.join(30)
    result = {"stage": args.name, "wall_s": wall, "cpu_s": cpu, "cpu_share": cpu / wall,
              "counts": {k: c1[k] - c0[k] for k in c1}, "totals": c1, "latencies": latencies}
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
