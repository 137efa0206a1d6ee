"""Run Debian's SIPp (``sip-tester``) as a GB/T 28181 device with the project's scenarios in ``sipp/``.

``SippDevice`` starts ``sipp`` (main scenario ``gb_device.xml``: register, keepalive, unregister;
out-of-call scenario ``gb_device_ooc.xml``: Catalog, INVITE, BYE) bound to 127.0.0.1, and on ``stop``
kills it and every PS sender it started (their PID files are in ``pid_dir``). A missing ``sipp`` is an
error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.peers.procs import stop_group
from tests.peers.rtsp import free_port

SCENARIOS = Path(__file__).with_name("sipp")
SENDER = Path(__file__).with_name("ps_sender.py")


class SippDevice:
    def __init__(
        self,
        *,
        platform_port: int,
        device_id: str,
        password: str,
        work_dir: Path,
        server_id: str = "34020000002000000001",
        domain: str = "3402000000",
        transport: str = "u1",
        channels: tuple[str, str] = ("34020000001320000001", "34020000001310000002"),
        new_channel: str = "34020000001320000003",
        catalog_notify: bool = False,
        alarm_at: int = 0,
        keepalives: int = 1000,
        keepalive_ms: int = 1000,
        expires: int = 3600,
        media_file: Path | None = None,
        sender_opts: str = "",
        ssrc_base: str = "0200098765",
        playback_ms: int = 3000,
        scenario: str = "gb_device.xml",
        ooc: str | None = "gb_device_ooc.xml",
        timeout_s: int = 120,
    ) -> None:
        self.work_dir = work_dir
        self.pid_dir = work_dir / "pids"
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(2)  # SOCK_DGRAM
        self.media_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        sender = f"{sys.executable} {SENDER}"
        opts = f"--file {media_file} --loop --seconds {timeout_s} {sender_opts}" if media_file else sender_opts
        keys = {
            "device_id": device_id, "server_id": server_id, "domain": domain, "channel_a": channels[0],
            "channel_b": channels[1], "channel_c": new_channel, "expires": str(expires), "sender": sender, "sender_opts": opts, "pid_dir": str(self.pid_dir),
            "dev_media_port": str(self.media_port), "ssrc_base": ssrc_base,
        }
        globals_ = {"keepalives": str(keepalives), "keepalive_ms": str(keepalive_ms), "alarm_at": str(alarm_at),
                    "playback_ms": str(playback_ms), "catalog_notify": "1" if catalog_notify else "0"}
        sipp = shutil.which("sipp")
        if sipp is None:
            msg = "sipp is not installed (Debian package 'sip-tester', listed in requirements-apt.txt)"
            raise RuntimeError(msg)
        self.cmd = [sipp, f"127.0.0.1:{platform_port}", "-sf", str(SCENARIOS / scenario), "-t", transport,
                    "-i", "127.0.0.1", "-p", str(self.port), "-ci", "127.0.0.1", "-cp", str(free_port(2)),
                    "-m", "1", "-l", "1", "-au", device_id, "-ap", password, "-nostdin",
                    "-timeout", f"{timeout_s}s", "-trace_err", "-error_file", str(work_dir / "sipp_errors.log"),
                    "-trace_msg", "-message_file", str(work_dir / "sipp_messages.log")]
        if ooc:
            self.cmd += ["-oocsf", str(SCENARIOS / ooc)]
        for key, value in keys.items():
            self.cmd += ["-key", key, value]
        if scenario != "gb_device.xml":  # only the main scenario declares the keepalive and alarm globals
            for name in ("keepalives", "keepalive_ms", "alarm_at"):
                globals_.pop(name)
        if not ooc:
            globals_.pop("playback_ms")
            globals_.pop("catalog_notify")
        for key, value in globals_.items():
            self.cmd += ["-set", key, value]

    def start(self) -> SippDevice:
        self.proc = subprocess.Popen(self.cmd, cwd=self.work_dir, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work_dir / "sipp_stderr.log", "wb"),  # noqa: SIM115
                                     start_new_session=True)
        return self

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def senders(self) -> list[int]:
        pids = []
        for path in self.pid_dir.glob("sender-*.pid"):
            try:
                pids.append(int(path.read_text().strip()))
            except (OSError, ValueError):
                continue
        return [p for p in pids if _alive(p)]

    def stop(self, *, vanish: bool = False) -> None:
        """Stop SIPp and its media senders; ``vanish`` kills them at once (SIGKILL), as a device losing power."""
        stop_group(self.proc, kill=vanish)
        for pid in self.senders():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.senders() and time.monotonic() < deadline:
            time.sleep(0.05)

    def received(self) -> list[str]:
        """What the device noted about the platform's requests (SUBSCRIBE, renewals, responses, DeviceControl), in
        the order SIPp handled them.

        SIPp runs an ``<exec>`` command in a double-forked child and goes on, so under load two notes can reach the
        file in the other order; each note therefore starts with SIPp's ``[clock_tick]`` (ms), substituted in
        SIPp's own process when the message is handled, and the notes are sorted by it (stably) here."""
        path = self.pid_dir / "received.log"
        if not path.exists():
            return []
        notes = []
        for line in path.read_text().splitlines():
            tick, _, note = line.partition(" ")
            notes.append((int(tick), note) if tick.isdigit() else (-1, line))
        return [note for _, note in sorted(notes, key=lambda n: n[0])]

    def log_tail(self, chars: int = 4000) -> str:
        parts = []
        for name in ("sipp_stderr.log", "sipp_errors.log", "pids/sender.log", "sipp_messages.log"):
            path = self.work_dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(parts)

    def __enter__(self) -> SippDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class SippSuperior:
    """SIPp playing a superior platform (``sipp/gb_superior.xml``) that Tubeline registers to: it checks the digest,
    asks for the catalog, INVITEs ``channel`` with media to ``media_port`` over UDP or TCP (it listens: our side
    connects), and says BYE after ``stream_ms``. Listens on 127.0.0.1:``port`` over ``transport`` (u1 or t1)."""

    def __init__(self, *, tubeline_port: int, superior_id: str, domain: str, local_id: str, password: str,
                 channel: str, media_port: int, work_dir: Path, transport: str = "u1", tcp_media: bool = False,
                 ssrc: str = "0100000077", stream_ms: int = 7500, timeout_s: int = 90) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(2) if transport == "u1" else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        sipp = shutil.which("sipp")
        if sipp is None:
            msg = "sipp is not installed (Debian package 'sip-tester', listed in requirements-apt.txt)"
            raise RuntimeError(msg)
        keys = {"superior_id": superior_id, "domain": domain, "local_id": local_id, "password": password,
                "channel": channel, "sink_host": "127.0.0.1", "sink_port": str(media_port), "ssrc": ssrc,
                "sdp_proto": "TCP/RTP/AVP" if tcp_media else "RTP/AVP",
                "setup_line": "a=setup:passive" if tcp_media else "a=connection:new"}
        self.cmd = [sipp, f"127.0.0.1:{tubeline_port}", "-sf", str(SCENARIOS / "gb_superior.xml"), "-t", transport,
                    "-i", "127.0.0.1", "-p", str(self.port), "-m", "100", "-nostdin", "-timeout", f"{timeout_s}s",
                    "-trace_err", "-error_file", str(work_dir / "sipp_errors.log"), "-trace_msg", "-message_file",
                    str(work_dir / "sipp_messages.log"), "-set", "stream_ms", str(stream_ms)]
        for key, value in keys.items():
            self.cmd += ["-key", key, value]

    def start(self) -> SippSuperior:
        self.proc = subprocess.Popen(self.cmd, cwd=self.work_dir, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work_dir / "sipp_stderr.log", "wb"),  # noqa: SIM115
                                     start_new_session=True)
        return self

    def messages(self) -> str:
        path = self.work_dir / "sipp_messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_group(self.proc)

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for name in ("sipp_stderr.log", "sipp_errors.log"):
            path = self.work_dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(parts)

    def __enter__(self) -> SippSuperior:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
