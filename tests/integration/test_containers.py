"""The CPU image, built and run with podman: ingest, detect and index containers on the real broker and S3.

``deploy/podman/build.sh`` bootstraps a Debian base with mmdebstrap, fills a wheelhouse with this checkout's
exact dependency versions and builds ``deploy/Containerfile`` offline (each step cached by its inputs, so only
the first run on a machine pays for it). podman-compose then starts the production compose file's worker
services with ``deploy/compose.local.yaml`` over it: the host network, this test session's Tansu broker and
SeaweedFS server, each worker under its own store identity, read-only root filesystems, uid 10001. The track
rows they index must equal those of the in-process run (``run_embedded``, what ``tubeline up`` does) on the
same video, up to the ingest session's random ID and wall-clock start.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cameras.registry import CameraRegistry
from pipeline.catalog.format import read_table
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.ingest import CameraSpec
from pipeline.store import ObjectStore, open_store
from workers.runner.embedded import run_embedded
from workers.runner.registry import WORKERS

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
SECONDS = 20  # of vtest.avi: 100 frames at the 5 fps analysis rate
SERVICES = ("worker-ingest", "worker-detect", "worker-index")


# -- shared with test_scaleout: the catalog's track rows, comparable across runs ----------------------------
def catalog_rows(store: ObjectStore, kind: str, camera: str, prefix: str = "catalog") -> list[dict[str, Any]]:
    """Rows of one kind and camera in the catalog, one per idempotency key (as the query layer dedupes)."""
    rows: dict[str, dict[str, Any]] = {}
    for info in store.list(f"{prefix}/{kind}/"):
        if f"/camera={camera}/" in info.key and info.key.endswith(".parquet"):
            for row in read_table(store.get(info.key)).to_pylist():
                rows.setdefault(row["ikey"], row)
    return list(rows.values())


def _ms(value: Any, origin: Any) -> int:
    return round((value - origin).total_seconds() * 1000)


def normalised_tracks(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Track rows without what differs between two runs of one video: the ingest session in IDs and keys, the
    wall-clock start (times become milliseconds since the first track), bookkeeping columns, and whether a
    track still open at the end of the video was closed by a shutdown (one process) or after the idle timeout."""
    if not rows:
        return []
    origin = min(r["started_at"] for r in rows)

    def one(r: dict[str, Any]) -> tuple[Any, ...]:
        camera, session, number = r["track_id"].split(":")
        epoch = session.rsplit(".", 1)[-1]
        crop = r["best_crop_key"].rsplit("/", 1)[-1] if r["best_crop_key"] else None
        return (camera, epoch, int(number), r["segment"], r["class_name"], _ms(r["started_at"], origin),
                _ms(r["ended_at"], origin), r["frame_width"], r["frame_height"], round(r["mean_score"], 3),
                r["colour"], r["vehicle_type"], "lost" if r["closed_reason"] == "shutdown" else r["closed_reason"],
                crop, tuple(round(v) for v in r["box"]), len(r["path"]))

    return sorted(one(r) for r in rows)


def reference_tracks(video: Path, camera: str, tmp: Path) -> list[tuple[Any, ...]]:
    """The in-process run on the embedded default (in-memory bus, local folder store)."""
    config = TubelineConfig.model_validate({"store": {"backend": "local", "local": {"root": str(tmp / "store")}},
                                            "ingest": {"overflow": "block"}})
    result = run_embedded(config, [CameraSpec(id=camera, kind="file", url=str(video), realtime=False)], timeout_s=300)
    assert result.frames_published == result.frames_detected > 0 and result.dead_letters == 0
    return normalised_tracks(catalog_rows(open_store(config), "tracks", camera))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SECONDS of vtest.avi as H.264, in a folder the container's uid can read."""
    testdata = REPO.parent / "shared" / "testdata"
    folder = tmp_path_factory.mktemp("media")
    folder.chmod(0o755)
    out = folder / "vtest.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(testdata / "vtest.avi"), "-t", str(SECONDS), "-c:v", "libx264",
                    "-g", "20", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    out.chmod(0o644)
    return out


@pytest.fixture(scope="module")
def image() -> dict[str, str]:
    """CONTAINERS_CONF and TUBELINE_IMAGE of the CPU image (built on a machine's first run, then cached)."""
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "deploy" / "podman" / "build.sh"), "--env"], capture_output=True, text=True,
                          timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    env = dict(word.split("=", 1) for word in shlex.split(proc.stdout.strip().removeprefix("export ")))
    sys.stderr.write(f"image {env['TUBELINE_IMAGE']} ready in {time.monotonic() - started:.0f} s\n")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _credentials(real_stack: Any, prefix: str) -> dict[str, str]:
    env = {}
    for kind in WORKERS:  # compose.yaml requires every service's identity, started or not
        s3 = real_stack.as_service(kind, prefix).store.s3
        env[f"TUBELINE_S3_{kind.upper()}_ACCESS_KEY"] = s3.access_key.get_secret_value() if s3.access_key else ""
        env[f"TUBELINE_S3_{kind.upper()}_SECRET_KEY"] = s3.secret_key.get_secret_value() if s3.secret_key else ""
    return env


class Compose:
    """podman-compose over deploy/compose.yaml + deploy/compose.local.yaml, one project per test."""

    def __init__(self, project: str, env: dict[str, str]) -> None:
        self.project, self.env = project, env
        self.tool = str(Path(sys.executable).parent / "podman-compose")

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        cmd = [self.tool, "-f", "deploy/compose.yaml", "-f", "deploy/compose.local.yaml", "-p", self.project,
               "--in-pod", "false", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=self.env)

    def inspect(self, service: str) -> dict[str, Any]:
        out = subprocess.run(["podman", "inspect", f"{self.project}_{service}_1"], capture_output=True, text=True,
                             timeout=60, env=self.env, check=True).stdout
        return json.loads(out)[0]

    def logs(self) -> str:
        return "\n".join(self("logs", "--tail", "40", service).stdout for service in SERVICES)


@pytest.fixture
def compose(real_stack, unique_name: str, video: Path, image: dict[str, str]) -> Iterator[Compose]:  # noqa: ANN001
    config = real_stack.as_service("ingest", unique_name)
    ports = {f"TUBELINE_LOCAL_HEALTH_{kind}": str(free_port()) for kind in ("INGEST", "DETECT", "INDEX")}
    env = {
        **os.environ, **image, **_credentials(real_stack, unique_name), **ports,
        "MINIO_ROOT_USER": "unused", "MINIO_ROOT_PASSWORD": "unused",  # compose.yaml requires them; not started
        "GRAFANA_ADMIN_PASSWORD": "unused",
        "TUBELINE_REGISTRY_KEY": base64.b64encode(os.urandom(32)).decode(), "TUBELINE_REGISTRY_KEY_ID": "k1",
        "TUBELINE_LOCAL_KAFKA": config.bus.kafka.bootstrap_servers, "TUBELINE_LOCAL_S3": config.store.s3.endpoint,
        "TUBELINE_LOCAL_BUCKET": config.store.s3.bucket, "TUBELINE_LOCAL_TOPIC_PREFIX": unique_name,
        "TUBELINE_LOCAL_MEDIA": str(video.parent), "TUBELINE_LOCAL_CAMERAS": f"[{unique_name}]",
    }
    runner = Compose(f"tl{unique_name}", env)
    try:
        yield runner
    finally:
        runner("down", "-t", "5", timeout=120)


def _ready(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_containers_index_what_the_in_process_run_indexes(
    real_stack, compose: Compose, unique_name: str, video: Path, tmp_path: Path  # noqa: ANN001
) -> None:
    camera = unique_name  # the stack's bucket is shared: a camera of its own
    expected = reference_tracks(video, camera, tmp_path)
    assert len(expected) >= 5

    admin = with_overrides(real_stack.config, {"bus.topic_prefix": unique_name})
    store = open_store(admin)
    registry = CameraRegistry(store)
    registry.put(CameraSpec(id=camera, kind="file", url=f"/media/{video.name}", realtime=False))
    try:
        started = time.monotonic()
        up = compose("up", "-d", "--no-deps", "--no-build", *SERVICES)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        ready: set[str] = set()
        found: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            ready |= {k for k in ("DETECT", "INDEX") if _ready(compose.env[f"TUBELINE_LOCAL_HEALTH_{k}"])}
            found = normalised_tracks(catalog_rows(store, "tracks", camera))
            if len(found) >= len(expected) and ready == {"DETECT", "INDEX"}:
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
        logs = compose.logs()
        assert ready == {"DETECT", "INDEX"}, f"/readyz never answered 200 for {ready ^ {'DETECT', 'INDEX'}}\n{logs}"
        assert found == expected, f"container run differs from the in-process run\n{logs}"
        sys.stderr.write(f"containers indexed {len(found)} tracks in {elapsed:.0f} s\n")

        ingest = compose.inspect("worker-ingest")
        assert ingest["State"]["Status"] == "exited" and ingest["State"]["ExitCode"] == 0, logs
        for service in SERVICES:
            info = compose.inspect(service)
            assert info["HostConfig"]["ReadonlyRootfs"] is True
            assert info["Config"]["User"] == "10001:10001"
            assert info["Config"]["Image"] == compose.env["TUBELINE_IMAGE"]
        assert any(store.list(f"recordings/{camera}/")), "ingest (in its container) wrote no recording"
    finally:
        registry.delete(camera)
