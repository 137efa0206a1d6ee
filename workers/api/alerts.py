"""Live alerts for the API's server-sent-event stream.

One background thread per API process follows the alerts topic in a consumer group of its own
(never committed, like ``tubeline alerts tail``), so every replica sees every alert. It keeps the
last ``backlog`` alerts and hands each new one to the connected streams, which filter by the user's
camera scope. A stream whose client is too slow loses alerts rather than holding up the others
(each has a bounded queue; drops are counted). Alert-desk changes (acknowledged, assigned, notes) go the
same way to every stream (:meth:`AlertHub.publish_update`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from pipeline.alerts import TailFilter, follow, tail_group
from pipeline.bus.base import Bus
from pipeline.runtime.background import BackgroundLoop
from schemas.alerts import Alert

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class Subscription:
    """One connected stream: an asyncio queue fed from the hub's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)  # Alert, or an alert-desk update
        self.dropped = 0

    def _put(self, alert: Any) -> None:
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1


class AlertHub:
    """Follows the alerts topic and fans alerts out to subscribers."""

    def __init__(self, bus: Bus | None, backlog: int = 200, enrich: Callable[[Alert], Alert] | None = None) -> None:
        self.bus = bus
        self.enrich = enrich
        self.recent: deque[Alert] = deque(maxlen=backlog)
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("api-alerts", self._follow, what="alerts follower")
        self.received = 0

    def start(self) -> None:
        if self.bus is not None:
            self._loop.start()

    def _follow(self, stop: threading.Event) -> None:
        assert self.bus is not None
        follow(self.bus, self.publish, stop, where=TailFilter(), group=tail_group())

    def publish(self, alert: Alert) -> None:
        if self.enrich is not None:
            alert = self.enrich(alert)
        with self._lock:
            self.received += 1
            self.recent.append(alert)
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, alert)
            except RuntimeError:  # the stream's loop is gone
                self.unsubscribe(sub)

    def publish_update(self, update: object) -> None:
        """Hand an alert-desk change (acknowledged, assigned, a note) to every connected stream."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, update)
            except RuntimeError:
                self.unsubscribe(sub)

    def subscribe(self) -> tuple[Subscription, list[Alert]]:
        """A new subscription and the recent alerts (oldest first), taken atomically."""
        sub = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
            return sub, list(self.recent)

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def stop(self) -> None:
        self._loop.stop()
