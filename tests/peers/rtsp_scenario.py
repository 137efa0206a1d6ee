"""The RTSP kill-and-restart scenario, shared by the in-process TCP tests and the UDP probe.

UDP needs a separate process: FFmpeg's RTSP client binds its RTP/RTCP receive sockets on the wildcard
address (its RTSP demuxer has no option to choose one), so the UDP runs happen inside a private network
namespace (``unshare -n``) whose only interface is loopback. Run as a module, this file is that probe:
it starts the gst-rtsp-server peer and the ingest worker (in-memory bus, local store) inside the
namespace and prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pipeline.bus.base import Bus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.store.base import ObjectStore
from schemas.cameras import CameraStatus
from schemas.topics import CAMERA_STATUS
from tests.peers.rtsp import GstRtspServer
from tests.peers.vlc import VlcRtspServer
from workers.ingest.worker import IngestWorker


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def scenario_ingest_config(**overrides: Any) -> IngestConfig:
    data: dict[str, Any] = {
        "analysis_fps": 5,
        "rtsp": {"open_timeout_s": 5, "read_timeout_s": 3},
        "reconnect": {"initial_s": 0.5, "max_s": 2, "reset_after_s": 3},
        "stats_interval_s": 1,
        "recordings": {"enabled": False},
    }
    data.update(overrides)
    return IngestConfig.model_validate(data)


def run_kill_restart(
    server: GstRtspServer,
    *,
    path: str,
    transport: str,
    bus: Bus,
    store: ObjectStore,
    config: TubelineConfig | None = None,
    restart: bool = True,
    tmp_dir: Path | None = None,
    ingest: IngestConfig | None = None,
) -> dict[str, Any]:
    """Ingest ``server``'s ``path``; optionally SIGKILL the server mid-stream and start it again."""
    cam = CameraSpec(id=f"rtsp-{path}-{transport}", kind="rtsp", url=server.url(path), transport=transport,
                     username=server.user, password=SecretStr(server.password) if server.password else None)
    worker = IngestWorker(config or TubelineConfig(), bus=bus, store=store, cameras=[cam],
                          ingest_config=ingest or scenario_ingest_config(), tmp_dir=tmp_dir)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    result: dict[str, Any] = {"camera": cam.id}
    try:
        ok = wait_for(lambda: cam.id in worker.runners and worker.runner(cam.id).publisher.counters.published >= 10,
                      30)
        result["first_ok"] = ok
        runner = worker.runner(cam.id) if cam.id in worker.runners else None
        result["before"] = runner.publisher.counters.published if runner else 0
        if ok and restart and runner is not None:
            server.kill()
            killed_at = time.monotonic()
            result["noticed"] = wait_for(lambda: not runner.state.online, 15)
            result["noticed_s"] = round(time.monotonic() - killed_at, 2)
            time.sleep(1.5)  # let at least one reconnect attempt fail against the dead port
            server.start()
            target = result["before"] + 10
            result["resumed"] = wait_for(lambda: runner.state.online and runner.publisher.counters.published >= target,
                                         30)
            result["resumed_s"] = round(time.monotonic() - killed_at, 2)
            result["opens"] = runner.state.opens
        if runner is not None:
            result["published"] = runner.publisher.counters.published
            result["snapshot"] = vars(runner.snapshot())
            source = runner._source  # noqa: SLF001 - what transport the live source ended up with
            memory = getattr(source, "memory", None)
            result["transport"] = getattr(source, "transport", None)
            result["fallbacks"] = memory.fallbacks if memory is not None else None
    finally:
        worker.stop()
        thread.join(20)
        result["stopped"] = not thread.is_alive()
    return result


def status_events(bus: Bus, camera_id: str, group: str) -> list[CameraStatus]:
    consumer = bus.consumer([CAMERA_STATUS.name], group)
    events: list[CameraStatus] = []
    idle = 0
    deadline = time.monotonic() + 30
    while idle < 3 and time.monotonic() < deadline:
        batch = consumer.poll(timeout=1.0, max_records=1000)
        idle = 0 if batch else idle + (1 if consumer.assignment() or events else 0)
        events += [CameraStatus.from_json(m.value) for m in batch]
    consumer.close()
    return [e for e in events if e.camera_id == camera_id]


def _probe() -> int:
    from pipeline.bus.memory import MemoryBus
    from pipeline.store.local import LocalStore

    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="h264")
    parser.add_argument("--transport", default="udp")
    parser.add_argument("--restart", action="store_true")
    parser.add_argument("--vlc", type=Path, help="serve this file with VLC (UDP only) instead of gst-rtsp-server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, (VlcRtspServer(args.vlc) if args.vlc else GstRtspServer()) as server:
        bus = MemoryBus()
        result = run_kill_restart(server, path=args.path, transport=args.transport, bus=bus,  # type: ignore[arg-type]
                                  store=LocalStore(Path(tmp) / "store"), restart=args.restart, tmp_dir=Path(tmp))
        events = status_events(bus, result["camera"], "probe")
        result["events"] = [[e.event, e.reason] for e in events]
        result["first_frame_s"] = [e.first_frame_seconds for e in events if e.event == "online"]
        result["details"] = [e.detail for e in events if e.event in ("offline", "reconnecting")][:6]
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_probe())
