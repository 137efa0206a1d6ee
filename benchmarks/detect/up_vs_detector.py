"""`tubeline up` on vtest against the detector alone, measured in one run (issue 19's last table row).

    nice -n 10 .venv/bin/python benchmarks/detect/up_vs_detector.py [--rounds 3] [--intra-op-threads 1]

Each round runs, in child processes so that each one's CPU time is its own:

* ``tubeline up --fast --no-serve`` on vtest.avi with the embedded defaults (in-memory bus, a fresh local store):
  ingest (decode, sample, JPEG) → detect + track → rules → plate, face → index, in one process;
* the configured detector alone (the same model and options through ``ModelZoo``) on the same number of vtest
  frames, decoded and held in memory before the clock starts.

Both report frames per CPU-second (user + system of the child, all threads), which other processes' load on a
shared machine disturbs far less than wall time; wall-time frames/s are printed too. The ratio
``up / detector alone`` is the share of the machine's CPU that goes to detection when the whole pipeline runs.
The table gives the median of the rounds and the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VTEST = ROOT.parent / "shared" / "testdata" / "vtest.avi"

_DETECTOR_ALONE = """
import json, sys, time, resource
import cv2
from pipeline.config import load_config
from models.zoo import ModelZoo
frames, step = int(sys.argv[1]), float(sys.argv[2])
cap = cv2.VideoCapture(sys.argv[3])
images, index, next_at = [], 0, 0.0
while len(images) < frames:
    ok, img = cap.read()
    if not ok:
        break
    if index >= next_at:
        images.append(img)
        next_at += step
    index += 1
detector = ModelZoo(load_config().models).detector()
detector.detect(images[0])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0, w0 = cpu(), time.perf_counter()
for img in images:
    detector.detect(img)
print(json.dumps({"frames": len(images), "cpu_s": cpu() - c0, "wall_s": time.perf_counter() - w0}))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_up(env: dict[str, str], source: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tubeline-up-bench-") as tmp:
        env = {**env, "TUBELINE_STORE__LOCAL__ROOT": str(Path(tmp) / "store")}
        c0, w0 = _children_cpu(), time.perf_counter()
        out = subprocess.run([str(ROOT / ".venv" / "bin" / "tubeline"), "up", "--fast", "--no-serve", "--source",
                              str(source)], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        cpu, wall = _children_cpu() - c0, time.perf_counter() - w0
    found = re.search(r"(\d+) detected \(", out.stdout)
    if found is None:
        msg = f"no 'N detected' line in the output of tubeline up:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        raise RuntimeError(msg)
    return {"frames": int(found.group(1)), "cpu_s": cpu, "wall_s": wall}


def run_detector(env: dict[str, str], frames: int, step: float, source: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _DETECTOR_ALONE, str(frames), str(step), str(source)], env=env,
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--source", type=Path, default=VTEST)
    ap.add_argument("--intra-op-threads", type=int, default=None,
                    help="models.intra_op_threads for both (default: the configured default)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TUBELINE_CONFIG", None)
    if args.intra_op_threads is not None:
        env["TUBELINE_MODELS__INTRA_OP_THREADS"] = str(args.intra_op_threads)
    import cv2

    cap = cv2.VideoCapture(str(args.source))
    source_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    from pipeline.config import load_config

    analysis_fps = load_config().ingest.analysis_fps
    step = max(1.0, source_fps / analysis_fps)  # the ingest sampler keeps one frame in `step`
    load0 = os.getloadavg()[0]
    rows: dict[str, list[float]] = {"up": [], "detector": [], "up wall": [], "detector wall": []}
    frames = 0
    for _ in range(args.rounds):
        up = run_up(env, args.source)
        frames = int(up["frames"])
        alone = run_detector(env, frames, step, args.source)
        rows["up"].append(up["frames"] / up["cpu_s"])
        rows["detector"].append(alone["frames"] / alone["cpu_s"])
        rows["up wall"].append(up["frames"] / up["wall_s"])
        rows["detector wall"].append(alone["frames"] / alone["wall_s"])
    print(f"{os.cpu_count()} CPUs, load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
          f"{args.source.name} at {source_fps:g} fps, {frames} frames analysed ({analysis_fps:g} fps sampled); "
          f"{args.rounds} rounds")
    print("| path | frames per CPU-second (median, min–max) | frames per wall second (median) |")
    print("|---|---|---|")
    for name in ("up", "detector"):
        vals = rows[name]
        print(f"| {'tubeline up --fast' if name == 'up' else 'detector alone'} | {statistics.median(vals):.1f} "
              f"({min(vals):.1f}–{max(vals):.1f}) | {statistics.median(rows[name + ' wall']):.1f} |")
    ratios = [u / d for u, d in zip(rows["up"], rows["detector"], strict=True)]
    print(f"\nratio up / detector alone, per CPU-second: {statistics.median(ratios):.2f}× "
          f"({min(ratios):.2f}–{max(ratios):.2f}); per wall second: "
          f"{statistics.median(rows['up wall']) / statistics.median(rows['detector wall']):.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
