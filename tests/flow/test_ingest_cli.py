"""``tubeline cameras`` against the local store, and the ingest worker picking up registry changes."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

from click.testing import CliRunner
from pydantic import SecretStr

from pipeline.bus.memory import MemoryBus
from pipeline.cameras.registry import CameraRegistry
from pipeline.config import TubelineConfig, load_config
from pipeline.config.ingest import CameraSpec, IngestConfig, camera_to_json
from pipeline.store import open_store
from pipeline.store.local import LocalStore
from workers.cli import main
from workers.ingest.worker import IngestWorker


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "tubeline.yaml"
    path.write_text(f"store:\n  backend: local\n  local:\n    root: {tmp_path / 'store'}\n"
                    f"secrets:\n  key_file: {tmp_path / 'secrets' / 'registry.key'}\n", encoding="utf-8")
    return path


def keyed_registry(cfg: Path) -> CameraRegistry:
    config = load_config(cfg, environ={})
    return CameraRegistry.from_config(open_store(config), config)


def stored(tmp_path: Path, camera_id: str) -> bytes:
    return (tmp_path / "store" / "registry" / "cameras" / f"{camera_id}.json").read_bytes()


def run(cfg: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["-c", str(cfg), "cameras", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_cameras_add_list_show_rm_never_print_the_password(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, out, _ = run(cfg, "add", "gate-1", "--url", "rtsp://admin:Zx9%40secret@10.1.2.3/ch1", "--name", "Gate",
                       "--point-class", "II", "--lat", "31.23", "--lon", "121.47")
    assert code == 0, out
    code, out, err = run(cfg, "add", "gate-1", "--url", "rtsp://h/x")
    assert code == 1 and "already exists" in err
    code, out, _ = run(cfg, "add", "door", "--url", "rtsp://10.1.2.4/ch1", "--username", "op", "--password-stdin",
                       stdin="Pw0rd!\n")
    assert code == 0
    code, out, _ = run(cfg, "list")
    assert "gate-1" in out and "door" in out and "rtsp://10.1.2.3/ch1" in out
    code, shown, _ = run(cfg, "show", "gate-1", "--json")
    data = json.loads(shown)
    assert data["username"] == "admin" and data["password"] == "**********" and data["point_class"] == "II"
    everything = "".join(run(cfg, *a)[1] for a in (["list"], ["list", "--json"], ["show", "door"], ["show", "gate-1"]))
    assert "Zx9" not in everything and "Pw0rd" not in everything
    # Stored for use by ingest, encrypted in the registry object (the raw bytes hold no clear password).
    for cid, secret in (("door", "Pw0rd!"), ("gate-1", "Zx9@secret")):
        data = stored(tmp_path, cid)
        assert secret.encode() not in data and b"Zx9%40" not in data
        assert json.loads(data)["password"].startswith("enc:v1:k1:")
    registry = keyed_registry(cfg)
    assert registry.get("door").password.get_secret_value() == "Pw0rd!"  # type: ignore[union-attr]
    assert registry.get("gate-1").password.get_secret_value() == "Zx9@secret"  # type: ignore[union-attr]
    assert (tmp_path / "secrets" / "registry.key").stat().st_mode & 0o077 == 0
    code, out, err = run(cfg, "rm", "door", "nope")
    assert code == 1 and "removed door" in out and "nope" in err
    assert [c.id for c in registry.list()] == ["gate-1"]


def test_cameras_rekey_converts_clear_text_records_and_rotates_the_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    store = LocalStore(tmp_path / "store")
    legacy = CameraSpec(id="old-cam", kind="rtsp", url="rtsp://10.0.0.7/s", username="u",
                        password=SecretStr("Legacy#pw"))  # written before encryption: password in clear
    store.put("registry/cameras/old-cam.json", json.dumps(camera_to_json(legacy, reveal_secrets=True)).encode())
    assert b"Legacy#pw" in stored(tmp_path, "old-cam")
    assert run(cfg, "show", "old-cam")[0] == 0  # still loads
    assert run(cfg, "add", "door", "--url", "rtsp://10.0.0.8/s", "--password-stdin", stdin="Door#pw\n")[0] == 0
    code, out, err = run(cfg, "rekey")
    assert code == 0, err
    assert "re-encrypted 1 clear-text and 0 older-key" in out and "old-cam: clear text -> k1" in out
    assert b"Legacy#pw" not in stored(tmp_path, "old-cam")
    code, out, err = run(cfg, "rekey", "--new-key")
    assert code == 0, err
    assert "new current key k2" in out and "door: k1 -> k2" in out and "old-cam: k1 -> k2" in out
    for cid in ("old-cam", "door"):
        assert json.loads(stored(tmp_path, cid))["password"].startswith("enc:v1:k2:")
    registry = keyed_registry(cfg)
    assert registry.get("old-cam").password.get_secret_value() == "Legacy#pw"  # type: ignore[union-attr]
    assert registry.get("door").password.get_secret_value() == "Door#pw"  # type: ignore[union-attr]
    assert "Legacy#pw" not in out + err and "Door#pw" not in out + err


def test_cameras_show_with_the_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    assert run(cfg, "add", "door", "--url", "rtsp://10.0.0.8/s", "--password-stdin", stdin="Door#pw\n")[0] == 0
    (tmp_path / "secrets" / "registry.key").write_text(f"k1 {base64.b64encode(os.urandom(32)).decode()}\n")
    code, out, err = run(cfg, "show", "door")
    assert code == 1 and "error: camera door: cannot decrypt with registry key 'k1'" in err
    assert "Traceback" not in out + err and "Door#pw" not in out + err
    code, out, _ = run(cfg, "list")  # listing needs no password: still works
    assert code == 0 and "door" in out


def test_cameras_import_is_all_or_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    csv_file = tmp_path / "cams.csv"
    csv_file.write_text("id,kind,url,name\nc1,file,/a.mp4,A\nc2,rtsp,ftp://h/x,B\n", encoding="utf-8")
    code, _, err = run(cfg, "import", str(csv_file))
    assert code == 1 and "row 3" in err
    assert CameraRegistry(LocalStore(tmp_path / "store")).list() == []
    yaml_file = tmp_path / "cams.yaml"
    yaml_file.write_text("- {id: y1, kind: file, url: /a.mp4}\n- {id: y2, kind: file, url: /b.mp4, enabled: false}\n")
    code, out, _ = run(cfg, "import", str(yaml_file))
    assert code == 0 and "imported 2" in out
    code, _, err = run(cfg, "import", str(yaml_file))
    assert code == 1 and "already exists" in err
    assert run(cfg, "import", str(yaml_file), "--replace")[0] == 0


def test_worker_follows_the_registry(tmp_path: Path, testdata: Path) -> None:
    cfg = write_config(tmp_path)
    store = LocalStore(tmp_path / "store")
    worker = IngestWorker(TubelineConfig(), bus=MemoryBus(), store=store,
                          ingest_config=IngestConfig(registry_refresh_s=0.2, recordings={"enabled": False}))
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        assert run(cfg, "add", "v1", "--kind", "file", "--url", str(testdata / "vtest.avi"), "--loop")[0] == 0
        assert _wait(lambda: "v1" in worker.runners and worker.runner("v1").state.online)
        assert run(cfg, "add", "v1", "--kind", "file", "--url", str(testdata / "vtest.avi"), "--disabled",
                   "--replace")[0] == 0
        assert _wait(lambda: "v1" not in worker.runners)
        assert run(cfg, "add", "v2", "--kind", "file", "--url", str(testdata / "vtest.avi"))[0] == 0
        assert _wait(lambda: "v2" in worker.runners)
        assert run(cfg, "rm", "v2")[0] == 0
        assert _wait(lambda: not worker.runners)
    finally:
        worker.stop()
        thread.join(15)
    assert not thread.is_alive()


def _wait(cond, timeout: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_cameras_clip_cuts_across_segments(tmp_path: Path) -> None:
    from pipeline.recordings import segments_between
    from tests.peers.media import make_video, probe_duration

    cfg = write_config(tmp_path)
    store = LocalStore(tmp_path / "store")
    video = make_video(tmp_path / "v.mp4", seconds=6, gop=25)
    assert run(cfg, "add", "cam", "--kind", "file", "--url", str(video), "--as-fast-as-possible")[0] == 0
    worker = IngestWorker(TubelineConfig(), bus=MemoryBus(), store=store, tmp_dir=tmp_path,
                          ingest_config=IngestConfig(overflow="block", recordings={"segment_s": 2}))
    worker.run(install_signals=False)
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    segments = segments_between(store, "cam", now - timedelta(hours=1), now + timedelta(hours=1))
    assert len(segments) == 3
    t0 = segments[0].start_dt
    start, end = (t0 + timedelta(seconds=1.5)).isoformat(), (t0 + timedelta(seconds=4.5)).isoformat()
    out = tmp_path / "clip.mp4"
    code, text, err = run(cfg, "clip", "cam", "--start", start, "--end", end, "--out", str(out))
    assert code == 0, err
    assert "from 3 segment(s)" in text
    assert 3.0 - 0.1 <= probe_duration(out) <= 4.0 + 0.1  # 3 s asked, at most one 1 s GOP more
    code, _, err = run(cfg, "clip", "cam", "--start", "2001-01-01T00:00:00Z", "--end", "2001-01-01T00:01:00Z",
                       "--out", str(tmp_path / "none.mp4"))
    assert code == 1 and "no recording" in err
