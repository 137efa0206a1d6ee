"""Ordered worker output with asynchronous object-store writes.

The detect worker used to PUT each crop synchronously inside its loop (a round trip to S3 per crop on the
hot path). Here a crop's PUT runs on a small thread pool and its announcement waits in a FIFO behind it:
messages leave strictly in the order they were queued, and a message never leaves before the object it
names is stored. ``drain`` (called before offsets are committed) waits for every write, so the
at-least-once contract is unchanged; a failed write raises from ``pump``/``drain`` as the inline PUT did.

Behind a spool (:mod:`pipeline.spool`, every deployed detect worker) a write may be spooled instead of stored:
then the crop's announcement travels with the spooled write (``put_then``) and the spool sends it once the
object is stored, so it can leave after messages queued later — never before its object.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pipeline.spool import announce, put_then, spool_of

log = logging.getLogger(__name__)

Send = Callable[[str, str, bytes], None]


class Outbox:
    def __init__(self, store: Any, send: Send, threads: int) -> None:
        self.store = store
        self._send = send
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="crop-put") if threads > 0 else None
        self._queue: deque[tuple[Future[bool] | None, str, str, bytes]] = deque()
        self.stored = 0

    def __len__(self) -> int:
        return len(self._queue)

    def send(self, topic: str, key: str, value: bytes) -> None:
        """Send now, or queue behind earlier messages still waiting for their objects."""
        if self._queue:
            self._queue.append((None, topic, key, value))
        else:
            self._send(topic, key, value)

    def put_then_send(
        self, object_key: str, data: bytes, content_type: str, metadata: Mapping[str, str],
        topic: str, key: str, value: bytes,
    ) -> None:
        """Store ``data`` under ``object_key`` (in the background when threads were given), then send."""
        if self._pool is None:
            if self._put(object_key, data, content_type, metadata, topic, key, value):
                self.send(topic, key, value)
            return
        future = self._pool.submit(self._put, object_key, data, content_type, metadata, topic, key, value)
        self._queue.append((future, topic, key, value))
        self.pump()

    def pump(self) -> None:
        """Send queued messages from the head while their objects are stored."""
        while self._queue and (self._queue[0][0] is None or self._queue[0][0].done()):
            self._pop()

    def drain(self) -> None:
        """Wait for every pending write and send everything queued."""
        while self._queue:
            self._pop()

    def close(self) -> None:
        self.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _pop(self) -> None:
        future, topic, key, value = self._queue[0]
        send = future.result() if future is not None else True  # re-raises a failed write; the message stays
        self._queue.popleft()
        if send:
            self._send(topic, key, value)

    def _put(self, object_key: str, data: bytes, content_type: str, metadata: Mapping[str, str],
             topic: str, key: str, value: bytes) -> bool:
        """Write the object; True when its announcement is still the outbox's to send, False when a spool
        took both (it sends the announcement once the object is stored)."""
        if spool_of(self.store) is not None:
            put_then(self.store, object_key, data, [announce(topic, value, key)], content_type=content_type,
                     metadata=dict(metadata))
            self.stored += 1
            return False
        self.store.put(object_key, data, content_type=content_type, metadata=dict(metadata))
        self.stored += 1
        return True
