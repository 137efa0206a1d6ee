"""Stopping the peer processes the tests start (each in its own session, so its children go with it)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen | None, *, kill: bool = False, timeout: float = 5.0) -> None:  # type: ignore[type-arg]
    """SIGTERM (or SIGKILL with ``kill``) the process group of ``proc``; SIGKILL if it outlives ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
