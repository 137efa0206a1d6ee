"""The recorder: one camera's original stream remuxed (never re-encoded) into segments in the object store.

Formats, keys, the day index and clip cutting are :mod:`pipeline.recordings`; this module writes them.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import av.error

from pipeline.config.ingest import RecordingsConfig
from pipeline.recordings import (
    TS_TIME_BASE,
    SegmentEntry,
    load_index,
    save_index,
    segment_format,
    segment_key,
    stamp,
)
from pipeline.store.base import ObjectStore
from workers.ingest.sources.base import SourceItem, StreamInfo

log = logging.getLogger(__name__)


_INDEX_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_INDEX_LOCKS_GUARD = threading.Lock()


def _index_lock(prefix: str, camera_id: str, day: str) -> threading.Lock:
    with _INDEX_LOCKS_GUARD:
        if len(_INDEX_LOCKS) > 10_000:
            _INDEX_LOCKS.clear()
        return _INDEX_LOCKS.setdefault((prefix, camera_id, day), threading.Lock())


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
            path = self._tmp / f"tubeline-rec-{self.camera_id}-{stamp(captured_at)}{segment_format(self._info.codec)[1]}"
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
            # Two recorders of one camera may share a day index (live recording and a download of the device's
            # recordings): the index is re-read and written under one lock per camera and day.
            with _index_lock(prefix, self.camera_id, day):
                entries = load_index(self.store, prefix, self.camera_id, day)
                entries[:] = [e for e in entries if e.key != key] + [entry]
                save_index(self.store, prefix, self.camera_id, day, entries)
        except Exception as exc:
            self.upload_errors += 1
            log.warning("%s: could not store segment %s: %s", self.camera_id, key, exc)
            return
        self.segments_written += 1
        log.debug("%s: stored %s (%.1f s, %d packets)", self.camera_id, key, entry.duration_s, seg.packets)
