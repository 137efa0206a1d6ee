"""Background work beside a request-serving process: a daemon thread that retries, and a tail of fresh messages.

:class:`BackgroundLoop` runs ``body(stop)`` on a daemon thread until :meth:`BackgroundLoop.stop`; when the
body raises (a broker that went away, a store error), the failure is logged and the body runs again after
``retry_s``. The API's followers (alerts, overlays, the live topic) and its webhook notifier are built on it.

:func:`follow_fresh` reads one topic in a consumer group of its own and hands on only messages younger than
``max_age_s`` by their broker timestamp: what a live view wants after a (re)connect, never a replay of the
topic's retention. Nothing is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pipeline.bus.base import Bus, Message

log = logging.getLogger(__name__)


class BackgroundLoop:
    """``body(stop)`` on a daemon thread named ``name``, run again ``retry_s`` after it fails, until stopped.

    ``what`` names the work in the failure's log line ("<what> failed; retrying in 2 s")."""

    def __init__(self, name: str, body: Callable[[threading.Event], None], *, what: str, retry_s: float = 2.0,
                 join_s: float = 5.0) -> None:
        self.name = name
        self.body = body
        self.what = what
        self.retry_s = retry_s
        self.join_s = join_s
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the thread (once; a second call does nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the body to end (its ``stop`` event) and wait up to ``join_s`` for the thread."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_s)
            self._thread = None

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.body(self.stop_event)
            except Exception:
                log.warning("%s failed; retrying in %.0f s", self.what, self.retry_s, exc_info=True)
                self.stop_event.wait(self.retry_s)


def follow_fresh(bus: Bus, topic: str, group: str, stop: threading.Event, handle: Callable[[Message], None], *,
                 max_age_s: float, on_stale: Callable[[], None] | None = None) -> None:
    """Call ``handle`` for each message of ``topic`` younger than ``max_age_s`` (``on_stale`` for each older
    one) until ``stop`` is set. ``group`` should be unique to this reader, so that it sees every partition."""
    consumer = bus.consumer([topic], group)
    try:
        while not stop.is_set():
            oldest_ms = (time.time() - max_age_s) * 1000
            for message in consumer.poll(timeout=0.5, max_records=500):
                if message.timestamp_ms and message.timestamp_ms < oldest_ms:
                    if on_stale is not None:
                        on_stale()
                    continue
                handle(message)
    finally:
        consumer.close()
