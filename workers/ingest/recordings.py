"""Recordings: the original stream remuxed (never re-encoded) into fixed-length segments, an index, and clips.

Layout in the object store (``prefix`` defaults to ``recordings``)::

    recordings/{camera}/{YYYY-MM-DD}/{camera}_{YYYYMMDDTHHMMSS.fffZ}.ts   one segment (MPEG-TS; Matroska .mkv for codecs TS cannot carry)
    recordings/{camera}/{YYYY-MM-DD}/index.json                          the day's segment index

Segments start on a keyframe; a new one starts at the first keyframe at least ``segment_s`` seconds after
the segment's start in capture time (for files: media time, ``session start + (pts - first pts)``, however
fast the file is read; for live sources: the pts timeline anchored to arrival time). Keys come from the
camera ID and the UTC capture time of the segment's first packet, so a retried upload overwrites. Only the
camera's recorder writes the day's index (one ingest worker owns a camera). :func:`cut_clip` reads the
index, demuxes the overlapping segments and writes one clip on a continuous timeline, so clips across
segment borders have no gap.
"""

from __future__ import annotations

import collections
import dataclasses
import io
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

from pipeline.config.ingest import RecordingsConfig
from pipeline.store.base import ObjectNotFound, ObjectStore
from workers.ingest.sources.base import SourceItem, StreamInfo

log = logging.getLogger(__name__)

TS_TIME_BASE = Fraction(1, 90000)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%S.") + f"{t.microsecond // 1000:03d}Z"


def day_prefix(prefix: str, camera_id: str, day: str) -> str:
    return f"{prefix}/{camera_id}/{day}"


# Codecs MPEG-TS carries; anything else (msmpeg4, mjpeg, vp8, ...) is segmented as Matroska.
_TS_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "cavs", "avs2", "avs3", "vc1"})


def segment_format(codec: str) -> tuple[str, str, str]:
    """(FFmpeg muxer, file suffix, content type) for segments of ``codec``."""
    if codec in _TS_CODECS:
        return "mpegts", ".ts", "video/mp2t"
    return "matroska", ".mkv", "video/x-matroska"


def segment_key(prefix: str, camera_id: str, start: datetime, suffix: str = ".ts") -> str:
    return f"{day_prefix(prefix, camera_id, start.strftime('%Y-%m-%d'))}/{camera_id}_{_stamp(start)}{suffix}"


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


def own_template(info: StreamInfo) -> StreamInfo:
    """``info`` with its template copied into a stream that no source owns.

    A source's template is its demuxer's stream, which FFmpeg frees when the source closes its input
    container: at the end of a file (while packets of it may still wait in the recorder's queue), when a
    looping file is reopened, on a reconnect. Opening a segment from a freed stream reads freed memory and
    can crash the process. The codec parameters (extradata included) are therefore copied, on the
    caller's thread while the source is open, into a stream of a private output container that is never
    written: an output container's streams live as long as the container object, which the stream
    references. Raises ``ValueError``/``av.error.FFmpegError`` when the segment format cannot carry the codec.
    """
    if info.template is None:
        return info
    holder = av.open(io.BytesIO(), mode="w", format=segment_format(info.codec)[0])
    return dataclasses.replace(info, template=holder.add_stream_from_template(info.template))


class _Segment:
    """An open segment file being muxed."""

    def __init__(self, path: Path, info: StreamInfo, start: datetime, start_pts: float, after_gap: bool) -> None:
        self.path = path
        self.format, self.suffix, self.content_type = segment_format(info.codec)
        self.container = av.open(str(path), mode="w", format=self.format)
        if info.template is not None:
            self.stream = self.container.add_stream_from_template(info.template)
        else:
            # No demuxer stream to copy (GB/T 28181): a stream by codec name. PyAV opens an encoder for it
            # that never encodes anything; keep libx265 from logging its summary.
            options = {"x265-params": "log-level=none"} if info.codec == "hevc" else None
            self.stream = self.container.add_stream(info.codec, options=options)
            self.stream.width, self.stream.height = info.width or 16, info.height or 16
        if self.format == "mpegts":
            self.stream.time_base = TS_TIME_BASE
        self.info = info
        self.start = start
        self.start_pts = start_pts
        self.last_end = start
        self.after_gap = after_gap
        self.packets = 0
        self.keyframes = 0
        self.mux_errors = 0

    def write(self, packet: av.Packet, captured_at: datetime, frame_s: float) -> None:
        if packet.dts is None:
            packet.dts = packet.pts
        packet.stream = self.stream
        try:
            self.container.mux(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            self.mux_errors += 1
            log.debug("mux error: %s", exc)
            return
        self.packets += 1
        self.keyframes += int(bool(packet.is_keyframe))
        self.last_end = max(self.last_end, captured_at + timedelta(seconds=frame_s))

    def finish(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError):
            log.warning("could not finish segment %s", self.path, exc_info=True)


class Recorder:
    """Per-camera recorder thread: segments packets, uploads each closed segment and updates the index.

    For a live source ``offer`` never blocks the reader: when the queue is full, packets are dropped until
    the next keyframe (a partial GOP would not decode) and counted in ``dropped``; the next segment is
    marked ``after_gap`` in the index. With ``block`` (offline files, ``ingest.overflow: block``) ``offer``
    waits for room instead, so a file read faster than the store takes uploads is recorded whole.
    """

    def __init__(
        self, camera_id: str, store: ObjectStore, config: RecordingsConfig, *, tmp_dir: str | Path | None = None,
        block: bool = False,
    ) -> None:
        self.camera_id = camera_id
        self.store = store
        self.config = config
        self.block = block
        self._tmp = Path(tmp_dir or tempfile.gettempdir())
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._cond = threading.Condition()
        self._packets_queued = 0
        self._dropping = False
        self._closed = False
        self.dropped = 0
        self.segments_written = 0
        self.upload_errors = 0
        self._index_cache: dict[str, list[SegmentEntry]] = {}
        self._segment: _Segment | None = None
        self._info: StreamInfo | None = None
        self._need_key = True
        self._gap = False
        self._thread = threading.Thread(target=self._run, name=f"record-{camera_id}", daemon=True)

    # -- reader side ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def begin(self, info: StreamInfo) -> None:
        """A source session starts: call it while the source is open (its stream's parameters are copied here,
        so packets still queued when the source closes are muxed without touching its container)."""
        try:
            owned: StreamInfo | None = own_template(info)
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("%s: cannot record %s: %s", self.camera_id, info.codec, exc)
            owned = None
        self._control(("begin", owned))

    def end(self) -> None:
        self._control(("end",))

    def offer(self, item: SourceItem) -> None:
        if item.packet is None:
            return
        with self._cond:
            if self._closed:
                return
            while self.block and self._packets_queued >= self.config.queue_size and not self._closed \
                    and self._thread.is_alive():
                self._cond.wait(0.5)
            if self._closed:
                return
            if self._dropping and not item.keyframe:
                self.dropped += 1
                return
            if self._packets_queued >= self.config.queue_size:
                self._dropping = True
                self.dropped += 1
                self._queue.append(("gap",))
                self._cond.notify()
                return
            self._dropping = False
            self._packets_queued += 1
            self._queue.append(("packet", item.packet, item.pts, item.captured_at, item.keyframe))
            self._cond.notify()

    def _control(self, entry: tuple[Any, ...]) -> None:
        with self._cond:
            if not self._closed:
                self._queue.append(entry)
                self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Write out what is queued, finish and upload the open segment, stop the thread."""
        self._control(("end",))
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: recorder did not finish within %.0f s", self.camera_id, timeout)

    # -- recorder thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait(0.5)
                if not self._queue:
                    return
                entry = self._queue.popleft()
                if entry[0] == "packet":
                    self._packets_queued -= 1
                    self._cond.notify_all()  # a blocked reader may go on
            try:
                self._handle(entry)
            except Exception:
                log.exception("%s: recorder failed on %s", self.camera_id, entry[0])
                self._abandon_segment()

    def _handle(self, entry: tuple[Any, ...]) -> None:
        kind = entry[0]
        if kind == "begin":
            self._finish_segment()
            self._info, self._need_key = entry[1], True
        elif kind == "end":
            self._finish_segment()
            self._need_key = True
        elif kind == "gap":
            self._finish_segment()
            self._need_key, self._gap = True, True
        else:
            self._write(*entry[1:])

    def _write(self, packet: av.Packet, pts: float, captured_at: datetime, keyframe: bool) -> None:
        if self._info is None:
            return
        if self._need_key and not keyframe:
            return
        seg = self._segment
        if keyframe and seg is not None and (captured_at - seg.start).total_seconds() >= self.config.segment_s:
            self._finish_segment()
            seg = None
        if seg is None:
            path = self._tmp / f"tubeline-rec-{self.camera_id}-{_stamp(captured_at)}{segment_format(self._info.codec)[1]}"
            seg = self._segment = _Segment(path, self._info, captured_at, pts, self._gap)
            self._need_key = self._gap = False
        frame_s = 1.0 / self._info.fps if self._info.fps else 0.04
        seg.write(packet, captured_at, frame_s)

    def _abandon_segment(self) -> None:
        seg, self._segment = self._segment, None
        self._need_key = True
        if seg is not None:
            seg.finish()
            seg.path.unlink(missing_ok=True)

    def _finish_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is None:
            return
        seg.finish()
        try:
            if seg.packets == 0:
                return
            self._upload(seg)
        finally:
            seg.path.unlink(missing_ok=True)

    def _upload(self, seg: _Segment) -> None:
        prefix = self.config.prefix
        key = segment_key(prefix, self.camera_id, seg.start, seg.suffix)
        size = seg.path.stat().st_size
        entry = SegmentEntry(
            key=key,
            start=seg.start.isoformat(),
            end=seg.last_end.isoformat(),
            start_pts=seg.start_pts,
            duration_s=round((seg.last_end - seg.start).total_seconds(), 6),
            packets=seg.packets,
            keyframes=seg.keyframes,
            bytes=size,
            codec=seg.info.codec,
            width=seg.info.width,
            height=seg.info.height,
            after_gap=seg.after_gap,
        )
        try:
            self.store.put(key, seg.path, content_type=seg.content_type, metadata={"camera-id": self.camera_id,
                                                                               "start": entry.start, "end": entry.end})
            day = seg.start.strftime("%Y-%m-%d")
            entries = self._index_cache.get(day)
            if entries is None:
                entries = load_index(self.store, prefix, self.camera_id, day)
                self._index_cache = {day: entries}
            entries[:] = [e for e in entries if e.key != key] + [entry]
            save_index(self.store, prefix, self.camera_id, day, entries)
        except Exception as exc:
            self.upload_errors += 1
            log.warning("%s: could not store segment %s: %s", self.camera_id, key, exc)
            return
        self.segments_written += 1
        log.debug("%s: stored %s (%.1f s, %d packets)", self.camera_id, key, entry.duration_s, seg.packets)


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
    """Write the recording of [start, end) to ``out_path`` (``.mp4`` or ``.ts``), without re-encoding.

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
    fmt = "mp4" if out_path.suffix.lower() in (".mp4", ".m4v", ".mov") else "mpegts"
    if fmt == "mpegts" and (others := sorted({e.codec for e in entries} - _TS_CODECS)):
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
        lag = 0 if packet.dts is None else round(float((packet.pts - packet.dts) * tb) * 90000)
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
