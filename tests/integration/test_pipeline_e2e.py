"""From a video file to tracks and alerts, over the real broker and S3 server (the issue-5 flow)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config import with_overrides
from pipeline.config.ingest import CameraSpec
from pipeline.store import open_store
from workers.runner.embedded import run_embedded

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vtest_cut(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 24 s of vtest.avi, re-encoded to H.264 (as a camera would send it)."""
    out = tmp_path_factory.mktemp("cut") / "vtest24.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(testdata / "vtest.avi"), "-t", "24", "-c:v", "libx264",
                    "-g", "20", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def testdata() -> Path:
    return REPO.parent / "shared" / "testdata"


def test_video_to_tracks_and_alerts_on_real_broker_and_s3(real_stack, unique_name: str, vtest_cut: Path) -> None:
    sample = yaml.safe_load((REPO / "examples" / "sample.yaml").read_text())
    config = with_overrides(real_stack.with_prefix(unique_name, bucket=unique_name),
                            {"rules": sample["rules"], "ingest.overflow": "block"})
    camera = CameraSpec(id="file-01", kind="file", device_type="file", url=str(vtest_cut), realtime=False)

    result = run_embedded(config, [camera], timeout_s=300)

    assert result.frames_published == 120  # 24 s at the 5 fps analysis rate
    assert result.frames_detected == 120 and result.dead_letters == 0
    assert result.tracks_by_class.get("person", 0) >= 5
    assert result.alerts_by_type.get("line_crossing", 0) >= 1
    assert set(result.alerts_by_type) <= {"line_crossing", "zone_intrusion", "crowding"}
    store = open_store(config)
    assert any(store.list("crops/file-01/"))
    assert store.exists("state/detect/file-01.json")
    assert any(i.key.endswith(".ts") for i in store.list("recordings/file-01/"))
