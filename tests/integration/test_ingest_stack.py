"""Ingest against the real Kafka-protocol broker and S3 server: registry on S3, frames and status on Kafka,
recordings in S3, ``tubeline cameras status`` reading the status topic."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydantic import SecretStr

from pipeline.bus import open_bus
from pipeline.cameras.registry import CameraNotFound, CameraRegistry
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.recordings import segments_between
from pipeline.sealing import Keyring
from pipeline.store import open_store
from schemas.frames import FrameHeader
from schemas.topics import FRAMES
from workers.cli import main
from workers.ingest.status import read_latest_status
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration


def config_file(cfg: TubelineConfig, path: Path) -> Path:
    data = cfg.model_dump(mode="python")
    for key in ("access_key", "secret_key"):
        value = data["store"]["s3"][key]
        data["store"]["s3"][key] = value.get_secret_value() if value is not None else None
    data = {k: data[k] for k in ("bus", "store")}
    path.write_text(yaml.safe_dump(_plain(data)), encoding="utf-8")
    return path


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def test_registry_on_s3_keeps_secrets_and_survives_reopen(real_stack, unique_name: str) -> None:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    store = open_store(cfg)
    keys = Keyring({"k1": os.urandom(32)}, "k1")
    registry = CameraRegistry(store, keyring=keys)
    cam = CameraSpec(id="34020000001320000007", kind="gb28181", gb_device_id="34020000001180000001",
                     name="东门 East gate", point_class="I", latitude=31.2, longitude=121.4, admin_unit="310101")
    rtsp = CameraSpec(id="r1", kind="rtsp", url="rtsp://10.0.0.9/s", username="u", password=SecretStr("pw!"))
    registry.put(cam)
    registry.put(rtsp)
    stored = store.get("registry/cameras/r1.json")
    assert b"pw!" not in stored and b'"password": "enc:v1:k1:' in stored  # encrypted at rest on S3 too
    again = CameraRegistry(open_store(cfg), keyring=keys)
    assert [c.id for c in again.list()] == ["34020000001320000007", "r1"]
    assert again.get("34020000001320000007") == cam
    assert again.get("r1").password.get_secret_value() == "pw!"  # type: ignore[union-attr]
    assert again.delete("r1") and not again.delete("r1")
    with pytest.raises(CameraNotFound):
        again.get("r1")


def test_file_ingest_over_kafka_and_s3(real_stack, unique_name: str, testdata: Path, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus, store = open_bus(cfg), open_store(cfg)
    CameraRegistry(store).put(CameraSpec(id="vtest", kind="file", url=str(testdata / "vtest.avi"), realtime=False))
    ingest = IngestConfig(analysis_fps=1, overflow="block", recordings={"segment_s": 30})
    worker = IngestWorker(cfg, bus=bus, store=store, ingest_config=ingest, tmp_dir=tmp_path)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    thread.join(120)
    if thread.is_alive():
        worker.stop()
        thread.join(20)
        pytest.fail("ingest did not finish the file")
    assert worker.error is None

    consumer = bus.consumer([FRAMES.name], f"{unique_name}-check")
    frames = []
    for _ in range(60):
        frames += consumer.poll(timeout=1.0, max_records=500)
        if len(frames) >= 80:
            break
    consumer.close()
    headers = [FrameHeader.from_headers(m.headers) for m in frames]
    assert len(frames) == 80  # 79.5 s at 1 fps
    assert sorted(h.sequence for h in headers) == list(range(80))
    assert {m.key for m in frames} == {b"vtest"}

    latest = read_latest_status(bus, group=f"{unique_name}-status", idle_s=3.0)
    assert latest["vtest"]["state"] == "offline" and latest["vtest"]["reason"] == "eof"

    first = min(h.captured_at for h in headers)
    last = max(h.captured_at for h in headers)
    segments = segments_between(store, "vtest", first, last)
    assert len(segments) >= 2 and sum(s.packets for s in segments) == 795
    assert all(store.stat(s.key).size == s.bytes for s in segments)

    result = CliRunner().invoke(main, ["-c", str(config_file(cfg, tmp_path / "c.yaml")), "cameras", "status",
                                       "--wait", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {r["camera_id"]: r for r in __import__("json").loads(result.stdout)}
    assert rows["vtest"]["state"] == "offline" and rows["vtest"]["reason"] == "eof"
    bus.close()
