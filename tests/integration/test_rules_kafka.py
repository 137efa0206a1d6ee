"""The rules worker on the real Kafka-protocol broker, with ``tubeline alerts tail --json`` running as a
separate process: a track crossing a line raises an alert that the operator's tail prints; an alert
raised before the tail started is shown only with ``--from-beginning``; Ctrl-C ends the tail cleanly."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.config import TubelineConfig
from pipeline.config.rules import RulesConfig
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.common import format_utc
from schemas.detections import DetectedObject, Detections
from schemas.ids import stable_id
from schemas.topics import ALERTS, DETECTIONS
from tests.contract.test_bus_contract import produce
from workers.rules.worker import RulesWorker

pytestmark = pytest.mark.integration

CAMERA = "34020000001320000001"
RULES = RulesConfig.model_validate({"cameras": [{
    "camera_id": CAMERA,
    "lines": [{"id": "gate", "name": "Gate", "a": [0.1, 0.5], "b": [0.9, 0.5]}],
    "rules": [{"id": "gate-in", "kind": "line_crossing", "line": "gate", "direction": "a_to_b",
               "severity": "high", "classes": ["person"]}],
}]})


def tail_env(cfg: TubelineConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUBELINE_")}
    env.update({
        "TUBELINE_BUS__BACKEND": "kafka",
        "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": cfg.bus.kafka.bootstrap_servers,
        "TUBELINE_BUS__KAFKA__SESSION_TIMEOUT_MS": "6000",
        "TUBELINE_BUS__TOPIC_PREFIX": cfg.bus.topic_prefix,
    })
    return env


class Tail:
    """``tubeline alerts tail`` as a subprocess, its stdout lines collected by a thread."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "alerts", "tail", "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self.following = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_errors, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)
            if line.startswith("following "):
                self.following.set()

    def wait_following(self, timeout: float = 60.0) -> None:
        """Until the tail has taken its start time ("following …" on stderr): an alert raised before that is, by
        design, not shown without --from-beginning — on a loaded machine the tail can take seconds to start."""
        if not self.following.wait(timeout):
            pytest.fail(f"tail did not start within {timeout:g} s: {''.join(self.errors)}")

    def alerts_until(self, alert_id: str, timeout: float = 90.0) -> list[Alert]:
        got: list[Alert] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            got.append(Alert.from_json(line))
            if got[-1].alert_id == alert_id:
                return got
        pytest.fail(f"tail did not print alert {alert_id}; printed {[a.alert_id for a in got]}, "
                    f"stderr: {self.stop()[1]}")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._err_reader.join(10)
        return self.proc.returncode, "".join(self.errors)


def crossing(start: datetime) -> list[Detections]:
    frames = []
    for i, y in enumerate((0.3, 0.45, 0.55, 0.7)):
        box = (300.0, y * 576 - 120, 340.0, y * 576)
        frames.append(Detections(
            camera_id=CAMERA, session="5f0c2a9e41b7", sequence=i, captured_at=start + timedelta(milliseconds=200 * i),
            frame_width=768, frame_height=576, model_id="test@1",
            objects=(DetectedObject(box=box, class_name="person", class_id=0, score=0.9,
                                    track_id=f"{CAMERA}:5f0c2a9e41b7:3"),),
        ))
    return frames


def test_alert_reaches_the_operator_tail_over_kafka(real_stack, unique_name: str, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = real_stack.with_prefix(unique_name)
    bus = open_bus(cfg)
    worker = RulesWorker(cfg, bus=bus, store=LocalStore(tmp_path / "store"), rules=RULES)
    worker.bus.ensure_topics(worker.topic_specs())
    old = Alert(alert_id="old-alert", alert_type="crowding", camera_id=CAMERA, severity="low", rule_id="r",
                occurred_at=datetime.now(UTC) - timedelta(hours=1), message="raised before the tail started")
    produce(bus, ALERTS.name, [(CAMERA, old.to_json())])
    time.sleep(1.5)

    env = tail_env(cfg)
    live = Tail(env)
    history = Tail(env, "--from-beginning", "--camera", CAMERA)
    live.wait_following()
    history.wait_following()
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        frames = crossing(datetime.now(UTC))
        produce(bus, DETECTIONS.name, [(f.camera_id, f.to_json()) for f in frames])
        expected = stable_id("gate-in", CAMERA, frames[2].objects[0].track_id, format_utc(frames[2].captured_at))
        seen_live = live.alerts_until(expected)
        seen_history = history.alerts_until(expected)
    finally:
        worker.stop()
        thread.join(60)
        rc_live, err_live = live.stop()
        rc_history, _ = history.stop()
        bus.close()
    assert worker.error is None and worker.alerts_sent == 1
    assert [a.alert_id for a in seen_live] == [expected]  # the old alert is not "from now"
    assert [a.alert_id for a in seen_history] == ["old-alert", expected]
    alert = seen_live[0]
    assert (alert.alert_type, alert.rule_id, alert.severity, alert.details["direction"]) == (
        "line_crossing", "gate-in", "high", "a_to_b")
    assert rc_live == 0 and rc_history == 0, err_live
    assert "Traceback" not in err_live and "stopped after 1 alert(s)" in err_live
