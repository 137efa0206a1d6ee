"""Per-stream CPU cost of ingest: decode + sample + resize/JPEG + produce, for 720p/1080p H.264 and 1080p H.265.

Runs the real ingest path (``IngestWorker`` → ``CameraRunner`` → ``FramePublisher``) on generated 25 fps
clips, sampling to 5 fps, producing to the in-memory bus (or a Kafka broker with ``--config``), and measures
process CPU time (user + system, all threads) with ``resource.getrusage``.

    .venv/bin/python benchmarks/ingest/bench_ingest.py                 # offline: as fast as possible
    .venv/bin/python benchmarks/ingest/bench_ingest.py --realtime 4    # 4 paced streams per case, 20 s

Offline mode gives CPU ms per input frame; a 25 fps stream costs 25 × that per second, so one core
sustains ``1000 / (25 × ms_per_frame)`` streams. Real-time mode runs N paced streams at once and reports
the measured CPU share, as a check of the offline estimate.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline.bus import open_bus
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, load_config
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.store.local import LocalStore
from workers.ingest.sources.file import FileSource
from workers.ingest.worker import IngestWorker

CASES = {
    "720p H.264": ("h264", "1280x720", "2M"),
    "1080p H.264": ("h264", "1920x1080", "4M"),
    "1080p H.265": ("hevc", "1920x1080", "3M"),
}
ENCODER = {"h264": ["-c:v", "libx264", "-preset", "veryfast", "-bf", "2"],
           "hevc": ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error"]}


def make_clip(path: Path, codec: str, size: str, bitrate: str, seconds: int) -> Path:
    """testsrc2 with temporal noise (so the encoder has real work), 25 fps, GOP 50, B-frames on."""
    if not path.exists():
        subprocess.run(
            [shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size={size}:rate=25", "-vf", "noise=alls=12:allf=t", "-t", str(seconds),
             "-pix_fmt", "yuv420p", *ENCODER[codec], "-g", "50", "-b:v", bitrate, "-maxrate", bitrate,
             "-bufsize", bitrate, str(path)],
            check=True,
        )
    return path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(config: TubelineConfig, bus, store, cameras: list[CameraSpec], ingest: IngestConfig) -> tuple[float, float, IngestWorker]:  # noqa: ANN001
    worker = IngestWorker(config, bus=bus, store=store, cameras=cameras, ingest_config=ingest)
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    worker.run(install_signals=False)
    return cpu_seconds() - cpu0, time.monotonic() - wall0, worker


def decode_only_ms(clip: Path) -> float:
    """CPU ms per frame of the file source alone (demux + decode, no conversion, JPEG or produce)."""
    source = FileSource("decode-only", clip, realtime=False)
    cpu0 = cpu_seconds()
    frames = sum(1 for _ in source.frames())
    source.close()
    return 1000 * (cpu_seconds() - cpu0) / max(1, frames)


def offline_case(name: str, clip: Path, config: TubelineConfig, bus, store, args: argparse.Namespace) -> dict:  # noqa: ANN001
    ingest = IngestConfig(analysis_fps=5, overflow="block", frame_queue_size=8, jpeg_quality=args.quality,
                          resize={"mode": args.resize}, recordings={"enabled": args.record})
    cam = CameraSpec(id="bench-" + name.replace(" ", "-").replace(".", ""), kind="file", url=str(clip),
                     realtime=False)
    best = None
    for _ in range(args.repeat):
        cpu, wall, worker = run(config, bus, store, [cam], ingest)
        snap = worker.final_totals[cam.id]
        result = {"case": name, "frames_in": snap.frames_in, "frames_out": snap.frames_out, "cpu_s": cpu, "wall_s": wall}
        if best is None or cpu < best["cpu_s"]:
            best = result
    assert best is not None
    best["decode_only_ms_per_frame"] = min(decode_only_ms(clip) for _ in range(args.repeat))
    best["ms_per_input_frame"] = 1000 * best["cpu_s"] / best["frames_in"]
    best["cpu_ms_per_stream_second"] = 25 * best["ms_per_input_frame"]
    best["streams_per_core"] = 1000 / best["cpu_ms_per_stream_second"]
    return best


def realtime_case(name: str, clip: Path, config: TubelineConfig, bus, store, args: argparse.Namespace) -> dict:  # noqa: ANN001
    ingest = IngestConfig(analysis_fps=5, jpeg_quality=args.quality, resize={"mode": args.resize},
                          recordings={"enabled": args.record})
    cams = [CameraSpec(id=f"rt{i}", kind="file", url=str(clip), realtime=True, loop=True) for i in range(args.realtime)]
    worker = IngestWorker(config, bus=bus, store=store, cameras=cams, ingest_config=ingest)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    time.sleep(3)  # warm up: streams open, first keyframes
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    before = [r.snapshot() for _, r in worker.runners.values()]
    time.sleep(args.seconds)
    after = [r.snapshot() for _, r in worker.runners.values()]
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    worker.stop()
    thread.join(30)
    fps_in = sum(a.frames_in - b.frames_in for a, b in zip(after, before, strict=True)) / wall
    fps_out = sum(a.frames_out - b.frames_out for a, b in zip(after, before, strict=True)) / wall
    dropped = sum(a.dropped - b.dropped for a, b in zip(after, before, strict=True))
    return {"case": name, "streams": args.realtime, "cpu_share_of_one_core": cpu / wall, "fps_in": fps_in,
            "fps_out": fps_out, "dropped": dropped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="clip length (offline) / measuring time (real time)")
    parser.add_argument("--repeat", type=int, default=3, help="offline runs per case (best is reported)")
    parser.add_argument("--realtime", type=int, default=0, metavar="N", help="run N paced streams per case instead")
    parser.add_argument("--resize", choices=["fit", "none"], default="fit", help="fit = default 1280x720 box")
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--record", action="store_true", help="also remux recordings (local store)")
    parser.add_argument("--config", help="tubeline YAML whose bus (e.g. Kafka) receives the frames")
    parser.add_argument("--kafka-stack", action="store_true",
                        help="start a throw-away local Tansu + SeaweedFS stack and produce frames to Kafka")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--media-dir", default=str(Path(tempfile.gettempdir()) / "tubeline-bench-ingest"))
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    media = Path(args.media_dir)
    media.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config) if args.config else TubelineConfig()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp) / "stack") if args.kafka_stack else None
        if stack is not None:
            config = stack.client_config()
            args.config = "local stack"
        try:
            run_cases(args, config, media, Path(tmp), results)
        finally:
            if stack is not None:
                stack.down()
    print_table(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def start_stack(state_dir: Path):  # noqa: ANN201 - pipeline.stack.LocalStack
    from pipeline.config.stack import StackConfig
    from pipeline.stack import LocalStack, free_port_block

    seaweed = free_port_block(4, also_grpc=True)
    s3 = free_port_block(1, also_grpc=True)
    kafka = free_port_block(1)
    stack = LocalStack(StackConfig(state_dir=state_dir, kafka_port=kafka, s3_port=s3, seaweed_base_port=seaweed))
    stack.up()
    return stack


def run_cases(args: argparse.Namespace, config: TubelineConfig, media: Path, tmp: Path, results: list[dict]) -> None:
    store = LocalStore(tmp / "store")
    for name in args.cases:
        codec, size, bitrate = CASES[name]
        clip = make_clip(media / f"{codec}_{size}_{bitrate}_{args.seconds}s.mp4", codec, size, bitrate, args.seconds)
        bus = open_bus(config) if args.config else MemoryBus()
        case = realtime_case if args.realtime else offline_case
        results.append(case(name, clip, config, bus, store, args))
        bus.close()
        results[-1]["bus"] = "kafka" if args.config else "memory"
        print(json.dumps(results[-1]), file=sys.stderr)


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    if args.realtime:
        print("| Stream | Streams | CPU (share of one core) | fps in | fps out | dropped |")
        print("|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['case']} | {r['streams']} | {r['cpu_share_of_one_core']:.2f} | {r['fps_in']:.1f} | "
                  f"{r['fps_out']:.1f} | {r['dropped']} |")
        return
    print("| Stream (25 fps in, 5 fps out) | Decode only, ms/frame | Full ingest, CPU ms per input frame "
          "| CPU ms per stream-second | Streams per core |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['decode_only_ms_per_frame']:.2f} | {r['ms_per_input_frame']:.2f} | "
              f"{r['cpu_ms_per_stream_second']:.0f} | {r['streams_per_core']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
