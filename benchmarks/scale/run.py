"""Scale harness: N live-paced streams through ingest → detect → index on the real broker and S3.

    nice -n 10 .venv/bin/python benchmarks/scale/run.py --streams 1,2,4 [--source file|rtsp]
        [--size 1280x720] [--codec h264|hevc] [--warmup-s 10] [--measure-s 20] [--png var/scale.png]

For each N it starts a throw-away local stack (``pipeline.stack.LocalStack``: Tansu + SeaweedFS; the topics
and the consumer groups are fresh, so one N's backlog never leaks into the next), then the three stages as
separate processes (``stage.py``, each with its own service identity) and N cameras: files generated
with ffmpeg from vtest.avi (people walking, so tracks, crops and summaries flow; scaled to ``--size``, 25 fps,
GOP 50) played at real time and looped, or the test
RTSP server (``tests/peers/gst_rtsp_server.py``, GStreamer, one live stream per camera). Ingest samples
5 fps per camera.

Per N it prints: CPU share of one core per stage and per stream; capture → detected and capture → indexed
latency p50/p95/p99 over the measuring window (frame headers carry the capture time; the indexer reports
per record kind: a track is indexable only once it ends, so its latency counts from its end, as the
indexer's own metric does); frames analysed vs published and the frames topic
backlog at the end (published − analysed since start, the detect group's lag in frames); frames dropped by
ingest. The largest N whose p95 capture → indexed stays under ``--p95-limit-s`` (2 s) is reported, and a
PNG of latency vs N is written with OpenCV. Benchmarks are not tests: run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.config.detect import DetectConfig  # noqa: E402
from pipeline.config.stack import StackConfig  # noqa: E402
from pipeline.stack import LocalStack, free_port_block  # noqa: E402

STAGES = ("index", "detect", "ingest")  # consumers first, so no frame waits for a consumer group
LIVE_KINDS = ("tracks", "plates", "faces", "alerts")  # catalog records (a track counts from its end)
# A track is known to have ended only once the tracker has missed it for this long: a configured wait, the same
# at any N, that no pipeline speed removes. The table shows capture → indexed both from the track's last sighting
# and net of this wait (the pipeline's own latency).
TRACK_BUFFER_S = DetectConfig().tracker.track_buffer_s
VTEST = ROOT.parent / "shared" / "testdata" / "vtest.avi"


def make_clip(folder: Path, size: str, codec: str, seconds: int = 60) -> Path:
    """vtest.avi (people walking: real tracks, crops and track summaries) scaled to ``size``, 25 fps, GOP 50."""
    path = folder / f"scale_{codec}_{size}.mp4"
    if not path.exists():
        enc = ["-c:v", "libx264", "-preset", "veryfast"] if codec == "h264" else \
            ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error"]
        width, height = size.split("x")
        source = ["-i", str(VTEST)] if VTEST.is_file() else ["-f", "lavfi", "-i", "testsrc2=rate=25"]  # no people
        subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                        *source, "-vf", f"scale={width}:{height},fps=25", "-t", str(seconds),
                        "-pix_fmt", "yuv420p", *enc, "-g", "50", "-b:v", "3M", str(path)], check=True)
    return path


def start_rtsp(size: str, codec: str) -> tuple[subprocess.Popen, str]:
    port = free_port_block(1)
    proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests" / "peers" / "gst_rtsp_server.py"),
                             "--port", str(port), "--size", size, "--fps", "25"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        msg = f"RTSP test server did not start: {line!r}"
        raise RuntimeError(msg)
    return proc, f"rtsp://127.0.0.1:{port}/{'h265' if codec == 'hevc' else 'h264'}"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def one_n(n: int, sources: list[str], args: argparse.Namespace, tmp: Path) -> dict:
    ports = free_port_block(4, also_grpc=True), free_port_block(1, also_grpc=True), free_port_block(1)
    stack = LocalStack(StackConfig(state_dir=tmp / f"stack-{n}", seaweed_base_port=ports[0], s3_port=ports[1],
                                   kafka_port=ports[2]))
    stack.up()
    procs: dict[str, subprocess.Popen] = {}
    try:
        for stage in STAGES:
            extra = ["--clips", *sources[:n]] if stage == "ingest" else []
            lead = 6.0 if stage != "ingest" else 0.0  # consumers join their groups before frames flow
            argv = [sys.executable, str(Path(__file__).with_name("stage.py")), stage, "--out", str(tmp / f"{stage}-{n}.json"),
                    "--warmup-s", str(args.warmup_s + lead + (6.0 if stage == "index" else 0.0)),
                    "--measure-s", str(args.measure_s), *extra]
            env = {**os.environ, **stack.env(as_=stage), "PYTHONPATH": str(ROOT),
                   "TUBELINE_INDEX__FLUSH_INTERVAL_S": str(args.index_flush_s)}
            procs[stage] = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
            time.sleep(6.0 if stage == "index" else 6.0 if stage == "detect" else 0.0)
        deadline = time.monotonic() + args.warmup_s + args.measure_s + 120
        for stage, proc in procs.items():
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode:
                msg = f"stage {stage} failed ({proc.returncode}): {err[-2000:]}"
                raise RuntimeError(msg)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stack.down()
    results = {s: json.loads((tmp / f"{s}-{n}.json").read_text()) for s in STAGES}
    return summarise(n, results)


def summarise(n: int, r: dict) -> dict:
    detected = r["detect"]["latencies"].get("detected", [])
    indexed = [v for k, vals in r["index"]["latencies"].items() if k.removeprefix("indexed_") in LIVE_KINDS
               for v in vals]
    net = [v - (TRACK_BUFFER_S if k == "indexed_tracks" else 0.0) for k, vals in r["index"]["latencies"].items()
           if k.removeprefix("indexed_") in LIVE_KINDS for v in vals]
    published = r["ingest"]["totals"]["frames_out"]
    analysed = r["detect"]["totals"]["frames"]
    return {
        "streams": n,
        "cpu": {s: r[s]["cpu_share"] for s in STAGES},
        "detected": [pct(detected, q) for q in (50, 95, 99)], "detected_n": len(detected),
        "indexed": [pct(indexed, q) for q in (50, 95, 99)], "indexed_n": len(indexed),
        "indexed_net": [pct(net, q) for q in (50, 95, 99)],
        "kinds": {k: len(v) for k, v in r["index"]["latencies"].items()},
        "fps_published": r["ingest"]["counts"]["frames_out"] / r["ingest"]["wall_s"],
        "fps_analysed": r["detect"]["counts"]["frames"] / r["detect"]["wall_s"],
        "backlog_frames": published - analysed, "dropped": r["ingest"]["counts"]["dropped"],
    }


def print_table(rows: list[dict], limit: float) -> None:
    print("| N | CPU ingest | CPU detect | CPU index | CPU/stream | fps pub | fps analysed | backlog | dropped "
          "| detected p50/p95/p99 s | indexed p50/p95/p99 s (n) | indexed net of track buffer p50/p95/p99 s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["cpu"]
        total = sum(c.values())
        d, i, j = r["detected"], r["indexed"], r["indexed_net"]
        print(f"| {r['streams']} | {c['ingest']:.2f} | {c['detect']:.2f} | {c['index']:.2f} | {total / r['streams']:.2f} "
              f"| {r['fps_published']:.1f} | {r['fps_analysed']:.1f} | {r['backlog_frames']} | {r['dropped']} "
              f"| {d[0]:.2f}/{d[1]:.2f}/{d[2]:.2f} | {i[0]:.2f}/{i[1]:.2f}/{i[2]:.2f} ({r['indexed_n']}) "
              f"| {j[0]:.2f}/{j[1]:.2f}/{j[2]:.2f} |")
    keeping_up = [r for r in rows if r["backlog_frames"] < 5 * r["streams"]]
    for what, column in (("capture → indexed", "indexed"),
                         (f"capture → indexed net of the {TRACK_BUFFER_S:g} s track buffer", "indexed_net"),
                         ("capture → detected", "detected")):
        ok = [r["streams"] for r in keeping_up if r[column][1] < limit]
        print(f"largest N with p95 {what} < {limit:g} s (and no growing backlog): {max(ok) if ok else 'none'}")


def plot(rows: list[dict], path: Path) -> None:
    """Latency (p50/p95, detected and indexed) vs N, drawn with OpenCV (no plotting dependency)."""
    w, h, m = 720, 420, 60
    img = np.full((h, w, 3), 255, np.uint8)
    ns = [r["streams"] for r in rows]
    series = {"detected p50": ([r["detected"][0] for r in rows], (200, 120, 0)),
              "detected p95": ([r["detected"][1] for r in rows], (255, 0, 0)),
              "indexed p50": ([r["indexed"][0] for r in rows], (0, 140, 0)),
              "indexed p95": ([r["indexed"][1] for r in rows], (0, 0, 220)),
              "indexed net p95": ([r["indexed_net"][1] for r in rows], (160, 0, 160))}
    top = max([v for vals, _ in series.values() for v in vals if v == v] + [2.5]) * 1.1
    x = lambda n: int(m + (n - min(ns)) / max(1, max(ns) - min(ns)) * (w - 2 * m))  # noqa: E731
    y = lambda s: int(h - m - s / top * (h - 2 * m))  # noqa: E731
    cv2.line(img, (m, h - m), (w - m, h - m), (0, 0, 0), 1)
    cv2.line(img, (m, m), (m, h - m), (0, 0, 0), 1)
    cv2.line(img, (m, y(2.0)), (w - m, y(2.0)), (160, 160, 160), 1)
    cv2.putText(img, "2 s", (w - m + 4, y(2.0) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (100, 100, 100), 1)
    for n in ns:
        cv2.putText(img, str(n), (x(n) - 4, h - m + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for k in range(5):
        s = top * k / 4
        cv2.putText(img, f"{s:.1f}", (8, y(s) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    for row, (name, (vals, colour)) in enumerate(series.items()):
        pts = [(x(n), y(v)) for n, v in zip(ns, vals, strict=True) if v == v]
        for a, b in zip(pts, pts[1:], strict=False):
            cv2.line(img, a, b, colour, 2)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1)
        cv2.putText(img, name, (w - m - 120, m + 16 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    cv2.putText(img, "latency (s) vs live streams N", (m, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--source", choices=("file", "rtsp"), default="file")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--codec", choices=("h264", "hevc"), default="h264")
    ap.add_argument("--warmup-s", type=float, default=10.0)
    ap.add_argument("--measure-s", type=float, default=20.0)
    ap.add_argument("--p95-limit-s", type=float, default=2.0)
    ap.add_argument("--index-flush-s", type=float, default=1.0,
                    help="index.flush_interval_s for the run (the default 30 s bounds capture → indexed from below)")
    ap.add_argument("--png", default=str(ROOT / "var" / "scale-latency.png"))
    ap.add_argument("--json")
    args = ap.parse_args()
    counts = [int(s) for s in args.streams.split(",")]
    load_start = os.getloadavg()[0]
    rows: list[dict] = []
    rtsp = None
    with tempfile.TemporaryDirectory(prefix="tubeline-scale-") as name:
        tmp = Path(name)
        try:
            if args.source == "rtsp":
                rtsp, url = start_rtsp(args.size, args.codec)
                sources = [url] * max(counts)
            else:
                sources = [str(make_clip(tmp, args.size, args.codec))] * max(counts)
            for n in counts:
                rows.append(one_n(n, sources, args, tmp))
                print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            if rtsp is not None:
                rtsp.terminate()
                rtsp.wait(10)
    print(f"load average at the start {load_start:.1f}")
    print(f"scale harness: {args.source} {args.codec} {args.size} at 25 fps, ingest samples 5 fps; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; warm-up {args.warmup_s:g} s, "
          f"window {args.measure_s:g} s per N; index flush interval {args.index_flush_s:g} s")
    print_table(rows, args.p95_limit_s)
    plot(rows, Path(args.png))
    print(f"plot: {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
