"""Recordings kept on GB/T 28181 devices: RecordInfo queries (2016 9.7), and downloads (9.9) into Tubeline's own
recordings.

``record_info`` asks a channel for its recordings in a time range (``<Query><CmdType>RecordInfo</CmdType>``
with StartTime/EndTime in the devices' zone, Type ``all``); the answer comes in pages of ``<RecordList>`` items
with the same SN until ``SumNum`` (duplicates dropped). The result is stored per UTC day
(:mod:`pipeline.device_recordings`) for the operator timeline ("on device").

``download`` INVITEs ``s=Download`` with ``a=downloadspeed:N``: the device sends the recording faster than
real time; packets go, without decoding, to a :class:`~workers.ingest.recorder.Recorder` under the camera's
ordinary recordings prefix, stamped with the recording's own time (requested start + media time), so
``cut_clip``, exports and the timeline treat them like live recordings. The download ends when the device
says so (MediaStatus 121, then our BYE, or its BYE).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config.ingest import RecordingsConfig
from pipeline.device_recordings import DeviceSpan, save_device_spans
from pipeline.store.base import ObjectStore
from workers.ingest.gb28181 import gbtime
from workers.ingest.gb28181.queries import QueryBroker
from workers.ingest.gb28181.source import GbSource, MediaPlatform
from workers.ingest.recorder import Recorder

log = logging.getLogger(__name__)


def record_info(queries: QueryBroker, device_id: str, channel_id: str, start: datetime, end: datetime, *,
                tz: Any, timeout: float = 20.0) -> list[DeviceSpan]:
    """The channel's recordings overlapping ``[start, end)`` (UTC), oldest first."""
    fields = [("StartTime", gbtime.format_time(start, tz)), ("EndTime", gbtime.format_time(end, tz)),
              ("Secrecy", "0"), ("Type", "all")]
    answer = queries.ask(device_id, "RecordInfo", fields, target=channel_id, list_tag="RecordList", timeout=timeout)
    spans = {}
    for item in answer.items:
        begin, finish = gbtime.parse(item.get("starttime", ""), tz), gbtime.parse(item.get("endtime", ""), tz)
        if begin is None or finish is None or finish <= begin or (item.get("deviceid") or channel_id) != channel_id:
            continue
        size = item.get("filesize", "")
        span = DeviceSpan(begin, finish, item.get("type", "")[:32], item.get("filepath", "")[:500],
                          int(size) if size.isascii() and size.isdigit() and len(size) < 16 else None)
        spans[(span.start, span.end, span.file_path)] = span
    log.info("RecordInfo %s on %s: %d recordings in %d pages (SumNum %s, %d duplicates)", channel_id, device_id,
             len(spans), answer.pages, answer.sum_num, answer.duplicates)
    return sorted(spans.values(), key=lambda s: s.start)


def refresh_device_spans(queries: QueryBroker, store: ObjectStore, prefix: str, device_id: str, channel_id: str,
                         start: datetime, end: datetime, *, tz: Any) -> list[DeviceSpan]:
    spans = record_info(queries, device_id, channel_id, start, end, tz=tz)
    save_device_spans(store, prefix, channel_id, start, end, spans)
    return spans


@dataclass
class DownloadResult:
    camera_id: str
    start: datetime
    end: datetime
    packets: int
    bytes: int
    media_s: float
    wall_s: float  # the whole download: INVITE, transfer, the device's end notification, BYE
    transfer_s: float  # first packet to last packet
    segments: int

    @property
    def speed(self) -> float:
        """Media seconds per second of transfer (> 1: faster than real time)."""
        return self.media_s / self.transfer_s if self.transfer_s > 0 else 0.0


def download(platform: MediaPlatform, store: ObjectStore, recordings: RecordingsConfig, device_id: str,
             channel_id: str, start: datetime, end: datetime, *, speed: int = 4, mode: str | None = None,
             tmp_dir: str | Path | None = None) -> DownloadResult:
    """Fetch the device's recording of ``[start, end)`` into the camera's recordings."""
    source = GbSource(platform, channel_id, device_id, mode=mode, playback=(start, end), download_speed=speed,
                      decode=False)
    recorder = Recorder(channel_id, store, recordings, tmp_dir=tmp_dir, block=True)
    recorder.start()
    started = time.monotonic()
    first = last = None
    first_at = last_at = 0.0
    packets = size = 0
    try:
        info = source.open()
        recorder.begin(info)
        for item in source.items():
            if item.packet is None:
                continue
            recorder.offer(item)
            packets += 1
            size += item.packet.size
            last_at = time.monotonic()
            if first is None:
                first, first_at = item.pts, last_at
            last = item.pts
        recorder.end()
    finally:
        source.close()
        recorder.close()
    wall = time.monotonic() - started
    media = (last - first) if first is not None and last is not None else 0.0
    transfer = last_at - first_at
    result = DownloadResult(channel_id, start, end, packets, size, media, wall, transfer, recorder.segments_written)
    log.info("downloaded %s %s..%s: %d packets, %.1f s of video in %.1f s (x%.1f; %.1f s in all), %d segments",
             channel_id, start.isoformat(), end.isoformat(), packets, media, transfer, result.speed, wall,
             result.segments)
    return result
