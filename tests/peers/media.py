"""Test media made with Debian's ffmpeg CLI (from requirements-apt.txt): synthetic H.264/H.265 clips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

_ENCODERS = {"h264": ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"],
             "hevc": ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error"]}


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        msg = "ffmpeg is not installed (Debian package 'ffmpeg', listed in requirements-apt.txt)"
        raise RuntimeError(msg)
    return path


def make_video(
    path: Path,
    *,
    codec: str = "h264",
    size: str = "640x360",
    fps: int = 25,
    seconds: float = 4.0,
    gop: int = 25,
    bitrate: str | None = None,
    container_args: tuple[str, ...] = (),
) -> Path:
    """A ``testsrc2`` clip with a fixed GOP (keyframe every ``gop`` frames), no B-frames, no audio."""
    if path.exists():
        return path
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={size}:rate={fps}", "-t", str(seconds), "-pix_fmt", "yuv420p",
           *_ENCODERS[codec], "-g", str(gop), "-keyint_min", str(gop), "-bf", "0", "-sc_threshold", "0"]
    if codec == "hevc":
        cmd[cmd.index("log-level=error")] = f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
    if bitrate:
        cmd += ["-b:v", bitrate]
    cmd += [*container_args, str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path


def probe_duration(path: Path) -> float:
    """Container duration in seconds according to ffprobe."""
    out = subprocess.run(
        [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-show_entries", "format=duration",
         "-of", "default=nw=1:nk=1", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return float(out.stdout.strip())


def count_frames(path: Path, *, fmt: str | None = None) -> int:
    """Frames FFmpeg itself decodes from ``path`` (``fmt`` forces a demuxer, e.g. ``mpeg`` for PS)."""
    cmd = [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
           "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"]
    if fmt:
        cmd += ["-f", fmt]
    out = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not out.stdout.strip():
        msg = f"FFmpeg could not read {path}: {out.stderr[-2000:]}"
        raise AssertionError(msg)
    return int(out.stdout.split()[0].split(",")[0])  # PS files list the stream twice (program + stream)
