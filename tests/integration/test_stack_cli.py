"""`tubeline stack up | status | logs | env | down` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.stack import _pid_alive, free_port_block, port_open
from workers.runner.registry import WORKERS

pytestmark = pytest.mark.integration


def tubeline(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_stack_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    seaweed = free_port_block(4, also_grpc=True)
    s3 = free_port_block(1, also_grpc=True)
    kafka = free_port_block(1)
    config = tmp_path / "tubeline.yaml"
    config.write_text(
        yaml.safe_dump(
            {"stack": {"state_dir": str(tmp_path / "state"), "kafka_port": kafka, "s3_port": s3,
                       "seaweed_base_port": seaweed}}
        )
    )
    env = {"TUBELINE_CONFIG": str(config)}
    try:
        up = tubeline("stack", "up", env=env)
        assert up.returncode == 0, up.stderr
        status = tubeline("stack", "status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        assert any(line.startswith("s3") and "healthy" in line and f"127.0.0.1:{s3}" in line for line in lines)
        assert any(line.startswith("kafka") and "healthy" in line and f"127.0.0.1:{kafka}" in line for line in lines)
        assert all(" since " in line for line in lines)
        # Loopback only: both servers refuse to be reached on another local address? They listen on 127.0.0.1.
        assert port_open("127.0.0.1", s3) and port_open("127.0.0.1", kafka)
        pids = [json.loads(p.read_text())["pid"] for p in (tmp_path / "state" / "run").glob("*.json")]
        assert len(pids) == 2 and all(_pid_alive(p) for p in pids)
        creds = tmp_path / "state" / "credentials.json"
        assert oct(creds.stat().st_mode & 0o777) == "0o600"
        secrets = [c["secret_key"] for c in json.loads(creds.read_text()).values()]
        assert len(set(secrets)) == 2 + len(WORKERS)  # admin, broker and one identity per worker kind
        assert not any(secret in up.stdout + up.stderr + status.stdout for secret in secrets)

        logs = tubeline("stack", "logs", "kafka", "-n", "5", env=env)
        assert logs.returncode == 0 and "kafka.log" in logs.stdout

        exports = tubeline("stack", "env", env=env)
        assert f"TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:{kafka}" in exports.stdout
        as_detect = tubeline("stack", "env", "--as", "detect", env=env)
        detect_key = json.loads(creds.read_text())["detect"]["access_key"]
        assert as_detect.returncode == 0 and f"TUBELINE_STORE__S3__ACCESS_KEY={detect_key}" in as_detect.stdout
        assert "TUBELINE_STORE__S3__CREATE_BUCKET=false" in as_detect.stdout

        again = tubeline("stack", "up", env=env)  # idempotent
        assert again.returncode == 0, again.stderr
        assert [json.loads(p.read_text())["pid"] for p in (tmp_path / "state" / "run").glob("*.json")] == pids
    finally:
        down = tubeline("stack", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "kafka" in down.stdout and "s3" in down.stdout
    assert not any(_pid_alive(p) for p in pids)
    assert not port_open("127.0.0.1", s3) and not port_open("127.0.0.1", kafka)
    status = tubeline("stack", "status", env=env)
    assert status.returncode == 1 and status.stdout.count("stopped") == 2


def test_stack_up_reports_a_busy_port_clearly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as blocker:
        busy = free_port_block(1, also_grpc=True)  # a valid s3_port (its gRPC port +10000 must fit too)
        blocker.bind(("127.0.0.1", busy))
        blocker.listen()
        config = tmp_path / "tubeline.yaml"
        config.write_text(yaml.safe_dump({"stack": {"state_dir": str(tmp_path / "state"), "s3_port": busy,
                                                    "seaweed_base_port": free_port_block(4, also_grpc=True)}}))
        result = tubeline("stack", "up", env={"TUBELINE_CONFIG": str(config)})
    assert result.returncode == 1
    assert f"127.0.0.1:{busy} is already in use" in result.stderr
