"""RTSP ingest with default settings against a UDP-only server: Debian's VLC, which answers ``461 Unsupported
transport`` to the default TCP SETUP. Ingest falls back to UDP, remembers it (the reconnect after the
server is killed and restarted goes straight to UDP), reports readable reasons and the time to first frame.

Runs in a loopback-only network namespace with the in-memory bus, like the other RTSP UDP tests (FFmpeg's
RTSP client binds its RTP sockets on the wildcard address; see ``tests/peers/rtsp_scenario.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.media import make_video

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_udp_only_server_default_settings_fall_back_and_remember(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "long.ts", seconds=30, bitrate="400k")  # longer than the test: no loop
    cmd = ["unshare", "-n", "--", "sh", "-c",
           f"ip link set lo up && exec {sys.executable} -m tests.peers.rtsp_scenario --path s --transport auto"
           f" --restart --vlc {clip}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, f"probe failed (unshare needs root/CAP_SYS_ADMIN): {proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["first_ok"] and result["noticed"] and result["resumed"] and result["stopped"], result
    assert result["transport"] == "udp"
    assert result["fallbacks"] == 1, result  # the reopen after the restart went straight to UDP
    assert "461 Unsupported Transport" in proc.stderr
    events = [tuple(e) for e in result["events"] if e[0] != "stats"]
    assert events.count(("online", None)) >= 2 and ("reconnecting", "network") in events, events
    assert not any(reason in ("other", "protocol") for _, reason in events), events
    assert not any("Errno" in d for d in result["details"]), result["details"]
    assert len(result["first_frame_s"]) >= 2 and all(0 < t < 5 for t in result["first_frame_s"]), result
    print(f"time to first frame: {result['first_frame_s']} s")  # noqa: T201
