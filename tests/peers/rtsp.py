"""Start and stop the gst-rtsp-server peer (``gst_rtsp_server.py``) from tests.

The server runs under Debian's ``/usr/bin/python3`` (python3-gi, gir1.2-gst-rtsp-server-1.0 and the
GStreamer plugins from requirements-apt.txt). A missing package is an error, never a skip.
"""

from __future__ import annotations

import os
import random
import select
import socket
import subprocess
import time
from pathlib import Path

from tests.peers.procs import stop_group

SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_tcp_port(host: str = "0.0.0.0") -> int:  # noqa: S104 - what the SIP platform binds
    """A port number free for both UDP and TCP on ``host`` (a SIP server listens on both; a number the kernel
    hands out for UDP may be an outgoing TCP connection's port, e.g. a Kafka client's)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((host, port))
            except OSError:
                continue
            return port
    msg = "no port free for both UDP and TCP after 50 tries"
    raise RuntimeError(msg)


class GstRtspServer:
    """One gst-rtsp-server process on 127.0.0.1:``port`` with mounts ``/h264`` and ``/h265``."""

    def __init__(
        self,
        port: int | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        auth: str = "digest",
        size: str = "640x360",
        fps: int = 25,
        clock: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.user, self.password, self.auth = user, password, auth
        self.size, self.fps, self.clock = size, fps, clock
        low = random.randrange(40000, 60000, 200)
        self.udp_ports = f"{low}-{low + 199}"
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def url(self, path: str = "h264") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 20.0) -> GstRtspServer:
        if not os.path.exists(SYSTEM_PYTHON):
            msg = f"{SYSTEM_PYTHON} not found: the RTSP peer needs Debian's python3 with python3-gi"
            raise RuntimeError(msg)
        cmd = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), "--size", self.size, "--fps", str(self.fps),
               "--udp-ports", self.udp_ports]
        if self.clock:
            cmd.append("--clock")
        if self.user:
            cmd += ["--user", self.user, "--password", self.password or "", "--auth", self.auth]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("READY"):
                    self.starts += 1
                    return self
                if not line and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
        self.stop()
        msg = f"gst-rtsp-server did not start on port {self.port}: {err[-2000:]}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL, as if the camera lost power."""
        stop_group(self.proc, kill=True, timeout=10)
        self._close_pipes()

    def stop(self) -> None:
        stop_group(self.proc)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> GstRtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
