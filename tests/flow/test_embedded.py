"""The embedded main job (`tubeline up`): ingest → bus → detect → downstream workers, on both bus/store backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.ingest import CameraSpec
from pipeline.store import open_store
from workers.runner.embedded import run_embedded


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of H.264 at 25 fps, 320x240 (FFmpeg's test pattern)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
         "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    return path


def _config(base: TubelineConfig, tmp_path: Path) -> TubelineConfig:
    return with_overrides(base, {"store.local.root": tmp_path / "store", "ingest.overflow": "block",
                                 "ingest.analysis_fps": 5.0})


def _check(config: TubelineConfig, clip: Path) -> None:
    camera = CameraSpec(id="cam-flow", kind="file", device_type="file", url=str(clip), realtime=False)
    result = run_embedded(config, [camera], timeout_s=180)
    # 4 s at 5 fps analysis rate: 20 frames, every one analysed, none lost.
    assert result.frames_published == 20
    assert result.frames_dropped == 0
    assert result.frames_detected == 20
    assert result.dead_letters == 0
    store = open_store(config)
    assert result.objects["recordings"][0] >= 1
    assert store.exists("state/detect/cam-flow.json")


def test_embedded_pipeline_on_memory_bus_and_local_store(short_clip: Path, tmp_path: Path) -> None:
    _check(_config(TubelineConfig(), tmp_path), short_clip)


@pytest.mark.integration
def test_embedded_pipeline_on_real_broker_and_s3(short_clip: Path, tmp_path: Path, real_stack, unique_name: str) -> None:
    _check(_config(real_stack.with_prefix(unique_name, bucket=unique_name), tmp_path), short_clip)


def test_up_command_prints_what_was_stored(short_clip: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "up", "--no-serve", "--source", str(short_clip)],
        capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "TUBELINE_STORE__LOCAL__ROOT": str(tmp_path / "store"), "HOME": str(tmp_path)},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "20 frames published (0 dropped), 20 detected" in result.stdout
    assert "tracks:" in result.stdout and "alerts:" in result.stdout
    assert "recordings/" in result.stdout


def test_up_rejects_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "up", "--no-serve", "--source", str(tmp_path / "nope.mp4")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
