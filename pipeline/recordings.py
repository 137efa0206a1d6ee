"""Recordings: the original stream remuxed (never re-encoded) into fixed-length segments, an index, and clips.

Layout in the object store (``prefix`` defaults to ``recordings``)::

    recordings/{camera}/{YYYY-MM-DD}/{camera}_{YYYYMMDDTHHMMSS.fffZ}.ts   one segment (MPEG-TS; Matroska .mkv for codecs TS cannot carry)
    recordings/{camera}/{YYYY-MM-DD}/index.json                          the day's segment index

Segments start on a keyframe; a new one starts at the first keyframe at least ``segment_s`` seconds after
the segment's start in capture time (for files: media time, ``session start + (pts - first pts)``, however
fast the file is read; for live sources: the pts timeline anchored to arrival time). Keys come from the
camera ID and the UTC capture time of the segment's first packet, so a retried upload overwrites. Only the
camera's recorder (``workers.ingest.recorder``) writes the day's index (one ingest worker owns a camera). :func:`cut_clip` reads the
index, demuxes the overlapping segments and writes one clip on a continuous timeline, so clips across
segment borders have no gap.

The index lists only segments that are in the store: the recorder adds a segment's entry with
:func:`index_segment` after the segment was stored (when it had to be spooled through an outage, the spool
runs it as the segment's follow-up, :data:`INDEX_HOOK`), so a clip never names a segment that is missing.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

TS_TIME_BASE = Fraction(1, 90000)


def stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%S.") + f"{t.microsecond // 1000:03d}Z"


def day_prefix(prefix: str, camera_id: str, day: str) -> str:
    return f"{prefix}/{camera_id}/{day}"


# Codecs MPEG-TS carries; anything else (msmpeg4, mjpeg, vp8, ...) is segmented as Matroska.
TS_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "cavs", "avs2", "avs3", "vc1"})


def segment_format(codec: str) -> tuple[str, str, str]:
    """(FFmpeg muxer, file suffix, content type) for segments of ``codec``."""
    if codec in TS_CODECS:
        return "mpegts", ".ts", "video/mp2t"
    return "matroska", ".mkv", "video/x-matroska"


def segment_key(prefix: str, camera_id: str, start: datetime, suffix: str = ".ts") -> str:
    return f"{day_prefix(prefix, camera_id, start.strftime('%Y-%m-%d'))}/{camera_id}_{stamp(start)}{suffix}"


def index_key(prefix: str, camera_id: str, day: str) -> str:
    return f"{day_prefix(prefix, camera_id, day)}/index.json"


@dataclass
class SegmentEntry:
    """One segment in a day's index."""

    key: str
    start: str
    end: str
    start_pts: float
    duration_s: float
    packets: int
    keyframes: int
    bytes: int
    codec: str
    width: int
    height: int
    after_gap: bool

    @property
    def start_dt(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @property
    def end_dt(self) -> datetime:
        return datetime.fromisoformat(self.end)


def load_index(store: ObjectStore, prefix: str, camera_id: str, day: str) -> list[SegmentEntry]:
    try:
        raw = json.loads(store.get(index_key(prefix, camera_id, day)))
    except ObjectNotFound:
        return []
    return [SegmentEntry(**e) for e in raw.get("segments", [])]


def save_index(store: ObjectStore, prefix: str, camera_id: str, day: str, entries: list[SegmentEntry]) -> None:
    doc = {"camera_id": camera_id, "day": day, "segments": [asdict(e) for e in sorted(entries, key=lambda e: e.start)]}
    store.put(index_key(prefix, camera_id, day), json.dumps(doc, indent=1).encode(), content_type="application/json")


INDEX_HOOK = "recording-index"
"""Name of the spool follow-up that adds a stored segment to its day index (payload: :func:`index_payload`)."""

_INDEX_LOCK = threading.Lock()


def index_payload(prefix: str, camera_id: str, entry: SegmentEntry) -> bytes:
    return json.dumps({"prefix": prefix, "camera_id": camera_id, "entry": asdict(entry)}).encode("utf-8")


def index_segment(store: ObjectStore, payload: bytes) -> None:
    """Add (or replace, by key) one stored segment's entry in its day index; ``payload`` from :func:`index_payload`.

    Read-modify-write of ``index.json``: only the worker that owns the camera writes it (one ingest worker owns a
    camera); the lock orders its writers within that worker — the live recorder, a download of the device's
    recordings into the same day, and the spool's uploader storing what waited through an outage."""
    doc = json.loads(payload)
    entry = SegmentEntry(**doc["entry"])
    prefix, camera_id = str(doc["prefix"]), str(doc["camera_id"])
    day = entry.start_dt.astimezone(UTC).strftime("%Y-%m-%d")
    with _INDEX_LOCK:
        entries = [e for e in load_index(store, prefix, camera_id, day) if e.key != entry.key]
        save_index(store, prefix, camera_id, day, [*entries, entry])


# -- clips ----------------------------------------------------------------------------------------
def segments_between(
    store: ObjectStore, camera_id: str, start: datetime, end: datetime, prefix: str = "recordings"
) -> list[SegmentEntry]:
    """Index entries of segments overlapping [start, end), in time order."""
    if start.tzinfo is None or end.tzinfo is None:
        msg = "clip times must be timezone-aware"
        raise ValueError(msg)
    found: list[SegmentEntry] = []
    day = start.astimezone(UTC).date()
    while day <= end.astimezone(UTC).date():
        for entry in load_index(store, prefix, camera_id, day.isoformat()):
            if entry.end_dt > start and entry.start_dt < end:
                found.append(entry)
        day += timedelta(days=1)
    return sorted(found, key=lambda e: e.start)


@dataclass
class ClipResult:
    path: Path
    segments: int
    packets: int
    start: datetime
    end: datetime

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def cut_clip(
    store: ObjectStore,
    camera_id: str,
    start: datetime,
    end: datetime,
    out_path: str | Path,
    *,
    prefix: str = "recordings",
) -> ClipResult:
    """Write the recording of [start, end) to ``out_path`` (``.mp4``, ``.ts`` or ``.mkv``), without re-encoding.

    The clip starts at the last keyframe at or before ``start`` (accuracy: one GOP) and runs to
    ``end``; timestamps are rewritten onto one timeline from the segments' UTC starts, so segment
    borders leave no gap. Raises ``LookupError`` when nothing was recorded in the range and ``ValueError``
    when the clip format cannot carry the recording's codec (MS-MPEG4 in MP4 or TS, for example).
    """
    if end <= start:
        msg = "clip end must be after its start"
        raise ValueError(msg)
    entries = segments_between(store, camera_id, start, end, prefix)
    if not entries:
        msg = f"no recording of camera {camera_id} between {start.isoformat()} and {end.isoformat()}"
        raise LookupError(msg)
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    fmt = "mp4" if suffix in (".mp4", ".m4v", ".mov") else "matroska" if suffix == ".mkv" else "mpegts"
    if fmt == "mpegts" and (others := sorted({e.codec for e in entries} - TS_CODECS)):
        # FFmpeg's TS muxer would write the file without a playable video stream.
        msg = f"MPEG-TS cannot carry {', '.join(others)}: a clip of this recording needs re-encoding"
        raise ValueError(msg)
    writer = _ClipWriter(out_path, fmt)
    with tempfile.TemporaryDirectory(prefix="tubeline-clip-") as tmp:
        try:
            for entry in entries:
                local = Path(tmp) / ("segment" + Path(entry.key).suffix)
                store.download(entry.key, local)
                writer.add_segment(local, entry, start, end)
                local.unlink(missing_ok=True)
        finally:
            writer.close()
    if writer.packets == 0 or writer.first_utc is None or writer.last_utc is None:
        out_path.unlink(missing_ok=True)
        msg = f"no video packets of camera {camera_id} between {start.isoformat()} and {end.isoformat()}"
        raise LookupError(msg)
    return ClipResult(out_path, len(entries), writer.packets, writer.first_utc, writer.last_utc)


class _ClipWriter:
    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.container: av.container.OutputContainer | None = None
        self.stream: Any = None
        self.first_utc: datetime | None = None
        self.last_utc: datetime | None = None
        self.packets = 0
        self._last_dts = -1

    def add_segment(self, local: Path, entry: SegmentEntry, start: datetime, end: datetime) -> None:
        with av.open(str(local)) as src:
            stream = src.streams.video[0]
            tb = stream.time_base or TS_TIME_BASE
            pending: list[tuple[av.Packet, datetime]] = []
            base_pts: int | None = None
            for packet in src.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                if base_pts is None:
                    base_pts = packet.pts
                utc = entry.start_dt + timedelta(seconds=float((packet.pts - base_pts) * tb))
                if utc >= end:
                    break
                if self.first_utc is None:
                    # Still before the clip: keep only the GOP that will contain the start.
                    if packet.is_keyframe:
                        pending = []
                    if not pending and not packet.is_keyframe:
                        continue
                    pending.append((packet, utc))
                    if utc < start:
                        continue
                    self._open(stream)
                    for held, held_utc in pending:
                        self._write(held, held_utc, tb)
                    pending = []
                    continue
                self._write(packet, utc, tb)

    def _open(self, template: Any) -> None:
        options = {"movflags": "+faststart"} if self.fmt == "mp4" else {}
        self.container = av.open(str(self.path), mode="w", format=self.fmt, options=options)
        self.stream = self.container.add_stream_from_template(template)
        self.stream.time_base = TS_TIME_BASE

    def _write(self, packet: av.Packet, utc: datetime, tb: Fraction) -> None:
        if self.first_utc is None:
            self.first_utc = utc
        assert self.container is not None
        offset = round((utc - self.first_utc).total_seconds() * 90000)
        lag = 0 if packet.dts is None or packet.pts is None else round(float((packet.pts - packet.dts) * tb) * 90000)
        dts = max(offset - lag, self._last_dts + 1)
        frame_s = float(packet.duration * tb) if packet.duration else 0.04
        packet.time_base = TS_TIME_BASE
        packet.pts, packet.dts = max(offset, dts), dts
        packet.stream = self.stream
        try:
            self.container.mux(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            log.debug("clip mux error: %s", exc)
            return
        self._last_dts = dts
        self.packets += 1
        self.last_utc = max(self.last_utc or utc, utc + timedelta(seconds=frame_s))

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
