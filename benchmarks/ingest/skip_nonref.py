"""Would ingest save decode time by skipping non-reference frames between its 5 fps samples?

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python benchmarks/ingest/skip_nonref.py [--rounds 2]

Decodes a 1080p25 clip made like ``bench_ingest.py``'s (testsrc2 + temporal noise, libx264 veryfast, ``-bf 2``,
GOP 50, 8 s) three ways, one and two decoder threads, and prints CPU ms per input frame (user + system of this
process) and how many frames came out:

* ``all``: every frame decoded (what ingest does);
* ``nonref``: ``codec_context.skip_frame = "NONREF"`` for the whole clip (the decoder drops frames no other frame
  refers to);
* ``dynamic``: ``NONREF`` only for packets far from the next 5 fps sample time, so every sample still gets a frame.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import av


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_clip(path: Path) -> None:
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=1920x1080:rate=25", "-vf", "noise=alls=12:allf=t", "-t", "8",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50",
                    "-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M", str(path)], check=True)


def decode(path: Path, mode: str, threads: int, fps: float = 5.0) -> tuple[float, int, int]:
    """(CPU seconds, frames out, packets) for one pass over ``path``."""
    interval, frame_s = 1.0 / fps, 0.04
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        if threads != 1:
            stream.thread_type = "AUTO"
        ctx = stream.codec_context
        start, frames, packets, next_sample = cpu(), 0, 0, 0.0
        for packet in container.demux(stream):
            packets += 1
            if mode == "nonref":
                ctx.skip_frame = "NONREF"
            elif mode == "dynamic" and packet.pts is not None and packet.time_base:
                t = float(packet.pts * packet.time_base)
                ctx.skip_frame = "NONREF" if t < next_sample - 1.5 * frame_s else "DEFAULT"
            for frame in ctx.decode(packet):
                frames += 1
                if frame.time is not None and frame.time + 0.002 >= next_sample:
                    next_sample = frame.time + interval
        return cpu() - start, frames, packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip)
        print("| threads | mode | CPU ms per input frame | frames out / packets |")
        print("| --- | --- | --- | --- |")
        for threads in (1, 2):
            for _ in range(args.rounds):
                for mode in ("all", "nonref", "dynamic"):
                    seconds, frames, packets = decode(clip, mode, threads)
                    print(f"| {threads} | {mode} | {1000 * seconds / packets:.2f} | {frames} / {packets} |")


if __name__ == "__main__":
    main()
