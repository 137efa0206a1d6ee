"""Recordings kept on the devices themselves (GB/T 28181 RecordInfo), as spans the operator timeline shows as
"on device" next to Tubeline's own recordings.

Layout (``prefix`` is the recordings prefix, ``recordings`` by default)::

    recordings/{camera}/device/{YYYY-MM-DD}.json    the device's recordings that overlap that UTC day

The ingest worker that owns the camera's device writes it after each RecordInfo query (the whole day is
rewritten, so a retried write overwrites); the API reads it. Nothing here talks to a device.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from pipeline.store.base import ObjectNotFound, ObjectStore

MAX_SPANS_PER_DAY = 10_000


@dataclass(frozen=True)
class DeviceSpan:
    """One recording on the device: its time range (UTC), kind (time, alarm, manual, …) and file."""

    start: datetime
    end: datetime
    kind: str = ""
    file_path: str = ""
    size_bytes: int | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DeviceSpan:
        size = data.get("size_bytes")
        return cls(datetime.fromisoformat(str(data["start"])), datetime.fromisoformat(str(data["end"])),
                   str(data.get("kind", ""))[:32], str(data.get("file_path", ""))[:500],
                   int(size) if isinstance(size, int) else None)


def device_index_key(prefix: str, camera_id: str, day: str) -> str:
    return f"{prefix}/{camera_id}/device/{day}.json"


def _days(start: datetime, end: datetime) -> list[str]:
    day = start.astimezone(UTC).date()
    out = []
    while day <= end.astimezone(UTC).date():
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def save_device_spans(store: ObjectStore, prefix: str, camera_id: str, start: datetime, end: datetime,
                      spans: list[DeviceSpan]) -> int:
    """Write the spans of ``[start, end)`` into the day files they overlap (each day rewritten whole, keeping
    what it held outside the queried range). Returns the number of day files written."""
    written = 0
    for day in _days(start, end):
        day_start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        day_end = day_start + timedelta(days=1)
        kept = [s for s in load_device_spans(store, prefix, camera_id, day) if s.end <= start or s.start >= end]
        fresh = [s for s in spans if s.start < day_end and s.end > day_start]
        merged = sorted({(s.start, s.end, s.file_path): s for s in kept + fresh}.values(), key=lambda s: s.start)
        body = json.dumps({"camera_id": camera_id, "day": day,
                           "spans": [s.to_json() for s in merged[:MAX_SPANS_PER_DAY]]}).encode()
        store.put(device_index_key(prefix, camera_id, day), body, content_type="application/json")
        written += 1
    return written


def load_device_spans(store: ObjectStore, prefix: str, camera_id: str, day: str) -> list[DeviceSpan]:
    try:
        data = json.loads(store.get(device_index_key(prefix, camera_id, day)))
    except ObjectNotFound:
        return []
    return [DeviceSpan.from_json(item) for item in data.get("spans", [])[:MAX_SPANS_PER_DAY]]


def device_spans_between(store: ObjectStore, prefix: str, camera_id: str, start: datetime,
                         end: datetime) -> list[DeviceSpan]:
    """The device's recordings overlapping ``[start, end)``, oldest first, deduplicated."""
    found: dict[tuple[datetime, datetime, str], DeviceSpan] = {}
    for day in _days(start, end):
        for span in load_device_spans(store, prefix, camera_id, day):
            if span.start < end and span.end > start:
                found[(span.start, span.end, span.file_path)] = span
    return sorted(found.values(), key=lambda s: s.start)
