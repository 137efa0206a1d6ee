"""``tubeline api serve`` as a user runs it: first-run admin bootstrap shown once on the console, loopback
bind, the UI and API answering, a clean stop on SIGINT — and the password in no log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "TUBELINE_STORE__LOCAL__ROOT": str(tmp_path / "store"), "TUBELINE_API__PORT": "0",
           "TUBELINE_API__CACHE_DIR": str(tmp_path / "api-cache"), "TUBELINE_INDEX__CACHE_DIR": str(tmp_path / "idx")}
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "--log-level", "INFO", "api", "serve"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(("First login", "Log in with")):
            break
    return proc, lines


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_serve_bootstraps_the_first_admin_once_and_never_logs_the_password(tmp_path: Path) -> None:
    proc, lines = serve(tmp_path)
    try:
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", lines[0])
        assert url, lines
        password = re.search(r"user 'admin', password (\S+)", "\n".join(lines))
        assert password, lines
        with httpx.Client(base_url=url.group(1), timeout=10) as http:
            assert "Tubeline" in http.get("/").text
            assert http.get("/api/cameras").status_code == 401
            session = http.post("/api/session", json={"username": "admin", "password": password.group(1)})
            assert session.status_code == 200 and session.json()["user"]["role"] == "admin"
            assert http.get("/api/users").json()["users"][0]["name"] == "admin"
    finally:
        err = stop(proc)
    assert password.group(1) not in err  # logs (stderr) never carry it
    stored = "".join(p.read_text(errors="replace") for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert password.group(1) not in stored

    again, lines = serve(tmp_path)
    stop(again)
    assert not any("password" in line and "admin" in line for line in lines), lines
