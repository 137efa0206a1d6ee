"""Follow the alerts topic for an operator: the library behind ``tubeline alerts tail``.

Each call of :func:`follow` joins the alerts topic in a **fresh consumer group** (never committed),
so every operator's tail sees every alert and none disturbs another. A new group starts at the
earliest retained offset. "From now" is therefore a filter, not a seek: the Kafka-protocol broker
we run locally (Tansu) reports the latest offset unreliably, so ``seek_to_end`` cannot be trusted.
With ``since`` set, an alert is shown when it was *produced* at or after ``since`` (the record's
timestamp) or its *event time* (``occurred_at``) is at or after ``since``; older history is read
and skipped.

The same ``alert_id`` is shown only once per tail (at-least-once delivery can repeat an alert).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.bus.base import Bus, Message
from schemas.alerts import Alert
from schemas.topics import ALERTS

log = logging.getLogger(__name__)

GROUP_PREFIX = "tubeline-alerts-tail"
SEEN_IDS = 100_000
"""How many alert IDs a tail remembers to drop repeats."""


def tail_group() -> str:
    """A consumer group of its own for one tail invocation."""
    return f"{GROUP_PREFIX}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class TailFilter:
    """Which alerts to show: cameras and types (empty = all), and the start time (None = all history)."""

    cameras: Collection[str] = ()
    types: Collection[str] = ()
    since: datetime | None = None

    def wants(self, alert: Alert, message: Message | None = None) -> bool:
        if self.cameras and alert.camera_id not in self.cameras:
            return False
        if self.types and alert.alert_type not in self.types:
            return False
        if self.since is None:
            return True
        if alert.occurred_at >= self.since:
            return True
        # Record timestamps have millisecond resolution: compare at that resolution.
        return message is not None and message.timestamp_ms >= int(self.since.timestamp() * 1000)


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def format_line(alert: Alert) -> str:
    """One line for an operator: time, severity, type, camera, track, message."""
    return (
        f"{_format_time(alert.occurred_at)}  {alert.severity.upper():8}  {alert.alert_type:14}  "
        f"{alert.camera_id}  {alert.track_id or '-'}  {alert.message}"
    )


class _Recent:
    """A bounded set of recently seen IDs (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, ident: str) -> bool:
        """True when ``ident`` is new."""
        if ident in self._ids:
            return False
        self._ids[ident] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def follow(
    bus: Bus,
    show: Callable[[Alert], None],
    stop: threading.Event,
    *,
    where: TailFilter | None = None,
    group: str | None = None,
    poll_timeout_s: float = 0.5,
) -> int:
    """Call ``show`` for each wanted alert until ``stop`` is set; returns how many were shown.

    Invalid messages on the alerts topic are logged and skipped. Nothing is ever committed.
    """
    where = where or TailFilter()
    consumer = bus.consumer([ALERTS.name], group or tail_group())
    seen = _Recent(SEEN_IDS)
    shown = 0
    try:
        while not stop.is_set():
            for message in consumer.poll(timeout=poll_timeout_s, max_records=500):
                try:
                    alert = Alert.from_json(message.value)
                except ValueError as exc:
                    log.warning("skipping an invalid alert at %s[%d]@%d: %s",
                                message.topic, message.partition, message.offset, exc)
                    continue
                if not seen.add(alert.alert_id) or not where.wants(alert, message):
                    continue
                show(alert)
                shown += 1
                if stop.is_set():
                    break
    finally:
        consumer.close()
    return shown
