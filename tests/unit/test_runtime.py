"""Worker lifecycle, signals, health endpoint, supervisor restarts, and the commit-after-processing loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from pipeline.bus import Message, TopicSpec
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.runtime.health import HealthServer
from pipeline.runtime.supervisor import Supervisor, SupervisorError
from pipeline.runtime.worker import ConsumerWorker, Health, Worker
from pipeline.store.local import LocalStore
from workers.cli import main
from workers.runner.registry import WORKERS, summary, worker_class


class CountingWorker(Worker):
    name = "counting"

    def __init__(self, *args, fail_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at = fail_at
        self.steps = 0
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")

    def step(self) -> None:
        self.steps += 1
        if self.fail_at is not None and self.steps >= self.fail_at:
            msg = "boom"
            raise RuntimeError(msg)
        time.sleep(0.001)

    def drain(self) -> None:
        self.calls.append("drain")

    def teardown(self) -> None:
        self.calls.append("teardown")


def make(cls, tmp_path: Path, **kwargs):
    return cls(TubelineConfig(), bus=MemoryBus(), store=LocalStore(tmp_path / "s"), **kwargs)


def test_lifecycle_runs_hooks_in_order_until_stopped(tmp_path: Path) -> None:
    worker = make(CountingWorker, tmp_path)
    seen: list[Health] = []
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 5
    while worker.health != Health.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    seen.append(worker.health)
    worker.stop()
    thread.join(5)
    assert seen == [Health.RUNNING]
    assert worker.health == Health.STOPPED
    assert worker.calls == ["setup", "drain", "teardown"]
    assert worker.steps > 0


def test_failure_still_tears_down_and_reports_failed(tmp_path: Path) -> None:
    worker = make(CountingWorker, tmp_path, fail_at=3)
    with pytest.raises(RuntimeError, match="boom"):
        worker.run(install_signals=False)
    assert worker.health == Health.FAILED
    assert worker.calls == ["setup", "teardown"]
    assert isinstance(worker.error, RuntimeError)


class FlakyConsumer(ConsumerWorker):
    """Fails on a chosen value without committing; records what it handled."""

    name = "flaky"
    topics: ClassVar = ("in",)
    group: ClassVar = "flaky"

    def __init__(self, *args, fail_on: bytes | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_on = fail_on
        self.handled: list[bytes] = []

    def handle_message(self, message: Message) -> None:
        if message.value == self.fail_on:
            msg = "downstream unavailable"
            raise ConnectionError(msg)
        self.handled.append(message.value)
        assert self.producer is not None
        self.producer.send("out", message.value.upper(), key=message.key)


def test_consumer_worker_commits_only_after_success(tmp_path: Path) -> None:
    bus = MemoryBus()
    bus.ensure_topics([TopicSpec("in", 1), TopicSpec("out", 1)])
    with bus.producer() as p:
        for v in (b"a", b"b", b"c"):
            p.send("in", v, key="cam")
    config = TubelineConfig()
    crashing = FlakyConsumer(config, bus=bus, store=LocalStore(tmp_path / "s"), fail_on=b"b")
    crashing.max_batch = 1
    with pytest.raises(ConnectionError):
        crashing.run(install_signals=False)
    assert crashing.handled == [b"a"]
    # "a" was committed, "b" was not: a fresh worker starts at "b".
    healthy = FlakyConsumer(config, bus=bus, store=LocalStore(tmp_path / "s"))
    healthy.setup()
    try:
        while healthy.processed < 2:
            healthy.step()
    finally:
        healthy.teardown()
    assert healthy.handled == [b"b", b"c"]
    assert [m.value for m in bus._topics["out"][0]] == [b"A", b"B", b"C"]


def test_supervisor_restarts_within_budget_then_gives_up(tmp_path: Path) -> None:
    created: list[CountingWorker] = []

    def factory(stop: threading.Event) -> Worker:
        w = make(CountingWorker, tmp_path, fail_at=2, stop_event=stop)
        created.append(w)
        return w

    sup = Supervisor(restart_budget=2, restart_window_s=60)
    sup.add("crashy", factory)
    sup.start()
    with pytest.raises(SupervisorError, match="crashy crashed 3 times"):
        sup.run_until(lambda: False, poll_s=0.02)
    sup.stop(timeout=5)
    assert len(created) == 3  # first run + 2 restarts


def test_health_endpoint_reports_states() -> None:
    states = {"ingest": Health.STARTING}
    server = HealthServer("127.0.0.1", 0, lambda: states).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert err.value.code == 503
        states["ingest"] = Health.RUNNING
        body = json.loads(urllib.request.urlopen(base + "/readyz", timeout=5).read())
        assert body == {"ok": True, "workers": {"ingest": "running"}}
        states["ingest"] = Health.FAILED
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/healthz", timeout=5)
        assert err.value.code == 503
    finally:
        server.stop()


def test_worker_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    from pipeline.stack import free_port_block

    port = free_port_block(1)
    env = {**os.environ, "TUBELINE_STORE__LOCAL__ROOT": str(tmp_path / "store"),
           "TUBELINE_RUNTIME__HEALTH_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "--log-level", "INFO", "worker", "rules"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200
            except OSError:
                time.sleep(0.1)
        assert ready, "worker never became ready"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "received SIGTERM" in err
    assert "stopping -> stopped" in err


def test_worker_help_lists_every_worker_with_its_docstring() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # undo click's wrapping
    for name in WORKERS:
        line = summary(name)
        doc = worker_class(name).__doc__ or ""
        assert line and line == doc.strip().splitlines()[0], name  # read from source = the class's docstring
        assert f"{name} {line}" in text, name
