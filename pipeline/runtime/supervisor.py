"""Run several workers in one process (the embedded ``up`` mode) and restart crashed ones.

Each worker runs in its own thread with its own stop event. A worker that raises is
restarted (a fresh instance from its factory) unless it crashed more than
``restart_budget`` times within ``restart_window_s``; then the supervisor stops
everything and reports the failure. Stopping is ordered: sources first, then each
downstream worker once the one before it has drained, so whatever a stage emits
while stopping (the detect worker's final track summaries) is still consumed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.runtime.worker import Health, Worker

log = logging.getLogger(__name__)

WorkerFactory = Callable[[threading.Event], Worker]


class SupervisorError(RuntimeError):
    """A worker exhausted its restart budget."""


@dataclass
class _Slot:
    name: str
    factory: WorkerFactory
    stop: threading.Event = field(default_factory=threading.Event)
    worker: Worker | None = None
    thread: threading.Thread | None = None
    crashes: deque[float] = field(default_factory=deque)
    restarts: int = 0


class Supervisor:
    def __init__(self, *, restart_budget: int = 5, restart_window_s: float = 300.0) -> None:
        self.stop_event = threading.Event()
        self.restart_budget = restart_budget
        self.restart_window_s = restart_window_s
        self._slots: list[_Slot] = []
        self.failure: str | None = None

    def add(self, name: str, factory: WorkerFactory) -> None:
        self._slots.append(_Slot(name, factory))

    def states(self) -> dict[str, Health]:
        return {s.name: (s.worker.health if s.worker else Health.STARTING) for s in self._slots}

    def workers(self) -> dict[str, Worker]:
        return {s.name: s.worker for s in self._slots if s.worker is not None}

    def _start(self, slot: _Slot) -> None:
        slot.worker = slot.factory(slot.stop)

        def target() -> None:
            try:
                slot.worker.run(install_signals=False)  # type: ignore[union-attr]
            except BaseException:  # noqa: BLE001 - logged by the worker; the monitor decides
                pass

        slot.thread = threading.Thread(target=target, name=f"worker-{slot.name}", daemon=True)
        slot.thread.start()

    def start(self) -> None:
        for slot in self._slots:
            self._start(slot)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states().values()
            if all(s == Health.RUNNING or s == Health.STOPPED for s in states):
                return True
            if any(s == Health.FAILED for s in states):
                return False
            time.sleep(0.05)
        return False

    def monitor_once(self) -> None:
        """Restart crashed workers within budget; raise SupervisorError past it."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.worker is None or slot.worker.health != Health.FAILED:
                continue
            slot.crashes.append(now)
            while slot.crashes and now - slot.crashes[0] > self.restart_window_s:
                slot.crashes.popleft()
            if len(slot.crashes) > self.restart_budget:
                self.failure = f"{slot.name} crashed {len(slot.crashes)} times in {self.restart_window_s:.0f} s: {slot.worker.error!r}"
                self.stop_event.set()
                for other in self._slots:
                    other.stop.set()
                raise SupervisorError(self.failure)
            slot.restarts += 1
            log.warning("restarting %s after crash (%d in window): %r", slot.name, len(slot.crashes), slot.worker.error)
            self._start(slot)

    def run_until(self, done: Callable[[], bool], poll_s: float = 0.1) -> None:
        while not self.stop_event.is_set() and not done():
            self.monitor_once()
            time.sleep(poll_s)

    def stop_worker(self, name: str, timeout: float = 30.0) -> None:
        """Stop one worker and wait until it has drained and torn down."""
        for slot in self._slots:
            if slot.name == name:
                slot.stop.set()
                if slot.thread is not None:
                    slot.thread.join(timeout)
                    if slot.thread.is_alive():
                        log.error("%s did not stop within %.0f s", slot.name, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every worker, in the order they were added (sources first, sinks last)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            self.stop_worker(slot.name, max(0.1, deadline - time.monotonic()))
