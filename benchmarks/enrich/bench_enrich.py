"""Throughput of the plate and face workers in objects per second, per core, on the real object stream.

The object stream is what the detect worker announces for the two enrichment test videos
(``tests/fixtures/enrich/make_videos.py``: four cars with plates, three walking portraits, the pedestrians
of vtest.avi): crops of vehicles and persons, stored in a local folder. The stream is repeated
``--repeat`` times under fresh camera and track IDs (so every repeat is new work for the vote and the face choice)
and fed to each worker over the in-memory bus; the worker runs its real loop (poll, handle, flush, save,
commit). Each measurement runs in a child process pinned to ``--cores`` CPU cores (``sched_setaffinity``)
with ONNX Runtime and OpenCV limited to as many threads; model loading and warm-up are excluded.

    .venv/bin/python benchmarks/enrich/bench_enrich.py                  # 1 and 2 cores, repeat 4
    .venv/bin/python benchmarks/enrich/bench_enrich.py --cores 1 --repeat 2 --json out.json

Columns: objects handled, of which the worker's own class (vehicles for plate, persons for face; the rest
is skipped at the class filter), wall seconds, objects/s, own-class objects/s, CPU ms per own-class object
(process CPU time / own objects) and the p50/p99 handling time of an own-class object, plus what was
published.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_enrich")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(work: Path) -> Path:
    """Make both videos, run detect on each, keep the crops in ``work/store`` and the objects in a JSONL file."""
    from pipeline.bus.memory import MemoryBus
    from pipeline.config import TubelineConfig
    from pipeline.store.local import LocalStore
    from schemas.topics import OBJECTS
    from tests.contract.test_bus_contract import drain
    from tests.fixtures.enrich.harness import run_pipeline
    from tests.fixtures.enrich.make_videos import make_face_video, make_plate_video

    objects = work / "objects.jsonl"
    if objects.exists():
        return objects
    store = LocalStore(work / "store")
    config = TubelineConfig.model_validate({"detect": {"crop_quality_gain": 1.0, "max_crops_per_track": 5}})
    lines: list[bytes] = []
    for name, make in (("plates", make_plate_video), ("faces", make_face_video)):
        video = work / f"{name}.mp4"
        make(video)
        bus = MemoryBus(default_partitions=3)
        run_pipeline(config, bus, store, video, f"bench-{name}", [])
        with bus.consumer([OBJECTS.name], "bench") as consumer:
            lines += [m.value for m in drain(consumer, 0.5)]
    objects.write_bytes(b"\n".join(lines) + b"\n")
    return objects


def repeated(objects: Path, repeat: int) -> list[bytes]:
    from schemas.objects import ObjectCrop

    crops = [ObjectCrop.from_json(line) for line in objects.read_bytes().splitlines() if line.strip()]
    out = []
    for k in range(repeat):
        for crop in crops:
            out.append(crop.model_copy(update={"track_id": f"{crop.track_id}r{k}", "camera_id": f"{crop.camera_id}-r{k}",
                                               "object_id": f"{crop.object_id}r{k}"}).to_json())
    return out


def child(worker_name: str, cores: int, work: Path, repeat: int) -> dict[str, object]:
    """One measurement, in this (child) process: pinned, threads limited, models warm before the clock starts."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import cv2

    cv2.setNumThreads(cores)
    from datetime import UTC, datetime

    import numpy as np

    from pipeline.bus.memory import MemoryBus
    from pipeline.config import TubelineConfig
    from pipeline.config.enrich import PlateWorkerConfig
    from pipeline.store.local import LocalStore
    from schemas.topics import OBJECTS
    from workers.face.worker import FaceWorker
    from workers.plate.worker import PlateWorker

    config = TubelineConfig.model_validate({"models": {"intra_op_threads": cores, "inter_op_threads": 1}})
    values = repeated(work / "objects.jsonl", repeat)
    bus = MemoryBus(default_partitions=3)
    bus.ensure_topics([OBJECTS])  # type: ignore[list-item]
    with bus.producer() as producer:
        for value in values:
            producer.send(OBJECTS.name, value, key=b"bench")
    store = LocalStore(work / "store")
    never_stale = {"clock": lambda: datetime(2000, 1, 1, tzinfo=UTC)}
    if worker_name == "plate":  # a fresh vote state per run, or the second run would find every crop counted
        settings = PlateWorkerConfig(state_prefix=f"bench-state/{os.getpid()}-{time.time_ns()}")
        worker: PlateWorker | FaceWorker = PlateWorker(config, bus=bus, store=store, settings=settings, **never_stale)
    else:
        worker = FaceWorker(config, bus=bus, store=store, **never_stale)
    own = worker.settings.classes
    times: list[float] = []
    inner = worker.handle_message

    def timed(message):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        inner(message)
        if json.loads(message.value)["class_name"] in own:
            times.append(time.perf_counter() - started)

    worker.handle_message = timed  # type: ignore[method-assign]
    worker.setup()  # loads and warms the models
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    try:
        while worker.stats["objects"] < len(values):
            worker.step()
    finally:
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        worker.teardown()
    published = {k: v for k, v in worker.stats.items() if k.startswith(("published", "alerts", "embedded"))}
    ms = np.asarray(times) * 1000
    return {
        "worker": worker_name, "cores": cores, "objects": len(values), "own": len(times), "wall_s": round(wall, 2),
        "objects_per_s": round(len(values) / wall, 1), "own_per_s": round(len(times) / wall, 1),
        "cpu_ms_per_own": round(cpu * 1000 / max(1, len(times)), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "published": published,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--workers", nargs="+", default=["plate", "face"], choices=["plate", "face"])
    parser.add_argument("--work", type=Path, default=None, help="Keep videos, crops and objects here.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON.")
    parser.add_argument("--child", nargs=2, metavar=("WORKER", "CORES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-enrich-"))
    if args.child:
        sys.stdout.write(json.dumps(child(args.child[0], int(args.child[1]), work, args.repeat)) + "\n")
        return 0
    prepare(work)
    rows = []
    for name in args.workers:
        for cores in args.cores:
            done = subprocess.run(
                [sys.executable, __file__, "--child", name, str(cores), "--work", str(work), "--repeat",
                 str(args.repeat)], check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    header = (f"{'worker':6} {'cores':>5} {'objects':>7} {'own':>5} {'wall s':>7} {'obj/s':>7} {'own/s':>6} "
              f"{'CPU ms/own':>10} {'p50 ms':>7} {'p99 ms':>7}  published")
    lines = [header]
    for r in rows:
        lines.append(f"{r['worker']:6} {r['cores']:5d} {r['objects']:7d} {r['own']:5d} {r['wall_s']:7.2f} "
                     f"{r['objects_per_s']:7.1f} {r['own_per_s']:6.1f} {r['cpu_ms_per_own']:10.1f} "
                     f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f}  {r['published']}")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
