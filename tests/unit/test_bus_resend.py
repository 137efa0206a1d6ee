"""The Kafka producer keeps messages until they are acknowledged and sends failed ones again.

kafka-python is replaced by a fake whose sends fail as they do against a broker that went away (a connection
error in the errback) or that was killed mid-request (Tansu acknowledged without an offset: the message was
not stored). The real broker restart is in tests/integration/test_faults.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError

import pipeline.bus.kafka as kafka_bus
from pipeline.bus.base import BusError
from pipeline.config.bus import KafkaConfig


class _Future:
    def __init__(self) -> None:
        self.callbacks: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self.errbacks: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def add_callback(self, fn: Callable[..., None], *args: Any) -> _Future:
        self.callbacks.append((fn, args))
        return self

    def add_errback(self, fn: Callable[..., None], *args: Any) -> _Future:
        self.errbacks.append((fn, args))
        return self


class _FakeKafka:
    """Outcome per (value, attempt): "ok", "no-offset" (acked with offset -1) or "error"."""

    plan: dict[tuple[bytes, int], str] = {}

    def __init__(self, **settings: Any) -> None:
        self.attempts: dict[bytes, int] = {}
        self.inflight: list[tuple[bytes, _Future]] = []
        self.stored: list[bytes] = []

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None) -> _Future:
        future = _Future()
        self.inflight.append((value, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        inflight, self.inflight = self.inflight, []
        for value, future in inflight:
            attempt = self.attempts.get(value, 0)
            self.attempts[value] = attempt + 1
            outcome = self.plan.get((value, attempt), "ok")
            if outcome == "error":
                for fn, args in future.errbacks:
                    fn(*args, KafkaConnectionError("broker went away"))
                continue
            offset = -1 if outcome == "no-offset" else len(self.stored)
            if outcome == "ok":
                self.stored.append(value)
            for fn, args in future.callbacks:
                fn(*args, SimpleNamespace(offset=offset))

    def close(self, timeout: float | None = None) -> None:
        pass


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> kafka_bus.KafkaBusProducer:
    monkeypatch.setattr(kafka_bus, "KafkaProducer", _FakeKafka)
    bus = kafka_bus.KafkaBus(KafkaConfig())
    return kafka_bus.KafkaBusProducer(bus)


def test_failed_and_offsetless_sends_are_sent_again_until_acknowledged(producer: kafka_bus.KafkaBusProducer) -> None:
    _FakeKafka.plan = {(b"m1", 0): "error", (b"m2", 0): "no-offset", (b"m2", 1): "error"}
    for value in (b"m1", b"m2", b"m3"):
        producer.send("t", value, key="cam")
    producer.flush()
    fake: _FakeKafka = producer._producer  # type: ignore[assignment]
    assert sorted(fake.stored) == [b"m1", b"m2", b"m3"]
    assert producer.resent == 3 and producer.degraded is None


def test_flush_gives_up_only_on_stop_or_timeout(producer: kafka_bus.KafkaBusProducer) -> None:
    _FakeKafka.plan = {(b"lost", n): "error" for n in range(1000)}
    producer.send("t", b"lost")
    with pytest.raises(BusError, match="not acknowledged"):
        producer.flush(timeout=0.5)
    assert "not acknowledged" in (producer.degraded or "")
    stop = threading.Event()
    producer.bind_stop(stop)
    stop.set()
    with pytest.raises(BusError):
        producer.flush()
