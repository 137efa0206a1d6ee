"""pipeline.runtime.background: the retrying daemon loop and the tail of fresh messages."""

from __future__ import annotations

import threading
import time

from pipeline.bus import Message, TopicSpec
from pipeline.bus.memory import MemoryBus
from pipeline.runtime.background import BackgroundLoop, follow_fresh


def _wait(check, timeout_s: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_loop_runs_the_body_again_after_a_failure_and_stops() -> None:
    runs: list[int] = []

    def body(stop: threading.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            msg = "broker gone"
            raise RuntimeError(msg)
        stop.wait()

    loop = BackgroundLoop("test-loop", body, what="test body", retry_s=0.05)
    loop.start()
    loop.start()  # once only
    _wait(lambda: len(runs) == 2)
    assert runs == [0, 1] and loop.running
    loop.stop()
    assert not loop.running and loop.stop_event.is_set()


def test_follow_fresh_skips_messages_older_than_max_age() -> None:
    bus = MemoryBus()
    bus.ensure_topics([TopicSpec("t", 1)])
    producer = bus.producer()
    producer.send("t", b"old")
    time.sleep(0.3)
    seen: list[bytes] = []
    stale: list[int] = []
    stop = threading.Event()

    def handle(message: Message) -> None:
        seen.append(message.value)
        stop.set()

    reader = threading.Thread(target=follow_fresh, args=(bus, "t", "g-fresh", stop, handle),
                              kwargs={"max_age_s": 0.2, "on_stale": lambda: stale.append(1)})
    reader.start()
    _wait(lambda: bool(stale))
    producer.send("t", b"new")
    reader.join(timeout=5.0)
    assert seen == [b"new"] and stale == [1]
