"""FFmpeg's own MPEG-PS demuxer (``-f mpeg``) reads what the project's PS-over-RTP sender produces:
every frame, the right codec (from our PSM: 0x1B H.264, 0x24 H.265), the right size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.media import count_frames, make_video

pytestmark = pytest.mark.integration

SENDER = Path(__file__).resolve().parents[1] / "peers" / "ps_sender.py"


@pytest.mark.parametrize(("codec", "ffmpeg_name"), [("h264", "h264"), ("hevc", "hevc")])
def test_ffmpeg_reads_the_senders_program_stream(tmp_path: Path, codec: str, ffmpeg_name: str) -> None:
    source = make_video(tmp_path / f"in-{codec}.ts", codec=codec, size="640x360", seconds=3, gop=25)
    out = tmp_path / f"out-{codec}.ps"
    subprocess.run([sys.executable, str(SENDER), "--file", str(source), "--out", str(out), "--fast"], check=True,
                   timeout=120)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "mpeg", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height", "-of", "csv=p=0", str(out)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert set(probe.stdout.split()) == {f"{ffmpeg_name},640,360"}
    assert count_frames(out, fmt="mpeg") == count_frames(source) == 75
