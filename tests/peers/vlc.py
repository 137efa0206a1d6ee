"""A UDP-only RTSP server for tests: Debian's VLC (``vlc-bin`` + ``vlc-plugin-base``) serving a file.

VLC's RTSP server offers RTP over UDP only: it answers ``461 Unsupported transport`` to a TCP SETUP, which is
what made ingest with the default TCP transport fail before the fallback. VLC refuses to run as root, so it
runs as ``nobody`` (``setpriv``); the file is copied into a world-readable folder for it. The object has the
interface of :class:`tests.peers.rtsp.GstRtspServer` that the scenarios use (``url``, ``start``, ``kill``,
``stop``). A missing package is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.peers.procs import stop_group
from tests.peers.rtsp import free_port


class VlcRtspServer:
    def __init__(self, media: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.user: str | None = None
        self.password: str | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="tubeline-vlc-"))
        self._dir.chmod(0o755)
        self.media = self._dir / media.name
        shutil.copyfile(media, self.media)
        self.media.chmod(0o644)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, path: str = "s") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 20.0) -> VlcRtspServer:
        for tool in ("cvlc", "setpriv"):
            if shutil.which(tool) is None:
                msg = f"{tool} not found: the UDP-only RTSP peer needs Debian's vlc-bin and vlc-plugin-base"
                raise RuntimeError(msg)
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cvlc", "-I", "dummy", "-q",
               "--no-audio", str(self.media), "--loop", "--sout", f"#rtp{{sdp=rtsp://127.0.0.1:{self.port}/s}}",
               "--sout-keep"]
        log = open(self._dir / "vlc.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True, cwd=self._dir,
                                     env={**os.environ, "HOME": str(self._dir)})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _describes(self.port):
                self.starts += 1
                return self
            time.sleep(0.1)
        self.stop()
        msg = f"VLC did not start serving RTSP on port {self.port}: {(self._dir / 'vlc.log').read_text()[-2000:]}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL, as if the camera lost power."""
        stop_group(self.proc, kill=True, timeout=10)

    def stop(self) -> None:
        stop_group(self.proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> VlcRtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describes(port: int) -> bool:
    """True once VLC answers DESCRIBE with 200 (it answers OPTIONS, and 5xx to DESCRIBE, a little earlier)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(f"DESCRIBE rtsp://127.0.0.1:{port}/s RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
                         .encode())
            sock.settimeout(1.0)
            return sock.recv(64).startswith(b"RTSP/1.0 200")
    except OSError:
        return False
