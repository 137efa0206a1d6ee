"""Delivery guarantees on the real broker: killed consumers, broker restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.bus import TopicSpec, open_bus
from pipeline.config import config_data
from tests.conftest import RealStack, start_private_stack
from tests.contract.test_bus_contract import consume, drain, produce

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# A consumer that reads, reports what it got, and then waits to be killed — it never commits.
KILLED_CONSUMER = textwrap.dedent(
    """
    import json, sys, time
    from pipeline.config import TubelineConfig
    from pipeline.bus import open_bus
    config = TubelineConfig.model_validate_json(sys.argv[1])
    consumer = open_bus(config).consumer(["work"], "workers")
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 3 and time.monotonic() < deadline:
        got += [m.value.decode() for m in consumer.poll(timeout=0.5)]
    print(json.dumps(got), flush=True)
    time.sleep(600)
    """
)


def _config_json(real: RealStack, prefix: str) -> str:
    return json.dumps(config_data(real.with_prefix(prefix), reveal_secrets=True), default=str)


def test_consumer_killed_before_commit_gets_its_messages_again(real_stack: RealStack, unique_name: str) -> None:
    bus = open_bus(real_stack.with_prefix(unique_name))
    bus.ensure_topics([TopicSpec("work", 1)])
    produce(bus, "work", [("cam-1", b"m1"), ("cam-1", b"m2"), ("cam-1", b"m3")])
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_CONSUMER, _config_json(real_stack, unique_name)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert json.loads(line) == ["m1", "m2", "m3"], "the doomed consumer should have read all three"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The dead member's session expires; the group's next member gets the uncommitted messages.
    with bus.consumer(["work"], "workers") as survivor:
        got = consume(survivor, 3, timeout=60)
        survivor.commit(got)
    assert [m.value for m in got] == [b"m1", b"m2", b"m3"]


def test_broker_restart_loses_no_committed_message(tmp_path: Path, unique_name: str) -> None:
    """Kill -9 the broker (s3 storage engine) mid-stream: data and committed offsets survive."""
    stack = start_private_stack(tmp_path / "stack")
    try:
        config = stack.client_config()
        bus = open_bus(config)
        bus.ensure_topics([TopicSpec("durable", 2)])
        first = [(f"cam-{i % 3}", f"before-{i}".encode()) for i in range(10)]
        produce(bus, "durable", first)
        with bus.consumer(["durable"], "indexer") as consumer:
            got = consume(consumer, 10)
            consumer.commit(got[:6])
        committed_values = {m.value for m in got[:6]}

        stack.kill_service("kafka")
        assert not any(s.running for s in stack.status() if s.name == "kafka")
        stack._start_kafka()

        produce(bus, "durable", [("cam-9", b"after-restart")])
        with bus.consumer(["durable"], "indexer") as consumer:
            rest = consume(consumer, 5, timeout=60) + drain(consumer, quiet_s=2)
        values = [m.value for m in rest]
        assert b"after-restart" in values
        assert committed_values.isdisjoint(values), "committed messages must not come back"
        assert sorted(values) == sorted({v for _, v in first} - committed_values | {b"after-restart"})
        # A new group still sees every message ever produced (nothing lost in the restart).
        with bus.consumer(["durable"], "audit") as fresh:
            everything = consume(fresh, 11, timeout=60)
        assert {m.value for m in everything} == {v for _, v in first} | {b"after-restart"}
    finally:
        stack.down()
        time.sleep(0.1)
