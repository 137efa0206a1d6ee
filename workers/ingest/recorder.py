"""The recorder: one camera's original stream remuxed (never re-encoded) into segments in the object store.

Formats, keys, the day index and clip cutting are :mod:`pipeline.recordings`; this module writes them.

Evidence is never dropped on a store failure: a finished segment is handed to the store with
:func:`pipeline.spool.put_then` — stored now, or moved into the worker's spool on local disk and stored when
the store answers again — and only then added to the day index (:func:`pipeline.recordings.index_segment`).
The segment being written lives in the spool's work folder with a small sidecar (``.json``, fsynced) that
says what it is; after a crash (kill -9, power loss up to what the disk had) :func:`recover_segments` finishes
such leftovers on the next start — MPEG-TS and Matroska stay readable up to the last complete packet — and
hands them over like any other segment, under the same key.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import os
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import av.error

from pipeline.config.ingest import RecordingsConfig
from pipeline.recordings import (
    INDEX_HOOK,
    TS_TIME_BASE,
    SegmentEntry,
    index_payload,
    index_segment,
    segment_format,
    segment_key,
    stamp,
)
from pipeline.spool import hook, put_then, spool_of
from pipeline.store.base import ObjectStore, StoreError
from workers.ingest.sources.base import SourceItem, StreamInfo

log = logging.getLogger(__name__)


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


def recording_workdir(store: ObjectStore, tmp_dir: str | Path | None = None) -> Path:
    """Where segments are written while open: ``tmp_dir``, else the spool's work folder, else the system temp."""
    if tmp_dir is not None:
        folder = Path(tmp_dir)
    elif (spooled := spool_of(store)) is not None:
        folder = spooled.workdir / "recordings"
    else:
        folder = Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class _Segment:
    """An open segment file being muxed, with a sidecar that lets a later start finish it after a crash."""

    def __init__(
        self, path: Path, info: StreamInfo, start: datetime, start_pts: float, after_gap: bool, camera_id: str,
        prefix: str,
    ) -> None:
        self.path = path
        self.format, self.suffix, self.content_type = segment_format(info.codec)
        self.key = segment_key(prefix, camera_id, start, self.suffix)
        _write_synced(_sidecar(path), json.dumps({
            "camera_id": camera_id, "prefix": prefix, "key": self.key, "start": start.isoformat(),
            "start_pts": start_pts, "codec": info.codec, "width": info.width, "height": info.height,
            "fps": info.fps, "after_gap": after_gap, "content_type": self.content_type,
        }).encode("utf-8"))
        # Each muxed packet goes to the file at once (not held in FFmpeg's 32 KB I/O buffer), so what a crash
        # leaves on disk is the segment up to its last packet.
        self.container = av.open(str(path), mode="w", format=self.format, options={"flush_packets": "1"})
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

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        _sidecar(self.path).unlink(missing_ok=True)

    def entry(self) -> SegmentEntry:
        return SegmentEntry(
            key=self.key, start=self.start.isoformat(), end=self.last_end.isoformat(), start_pts=self.start_pts,
            duration_s=round((self.last_end - self.start).total_seconds(), 6), packets=self.packets,
            keyframes=self.keyframes, bytes=self.path.stat().st_size, codec=self.info.codec, width=self.info.width,
            height=self.info.height, after_gap=self.after_gap,
        )


def _write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class Recorder:
    """Per-camera recorder thread: segments packets, uploads each closed segment and updates the index.

    For a live source ``offer`` never blocks the reader: when the queue is full, packets are dropped until
    the next keyframe (a partial GOP would not decode) and counted in ``dropped``; the next segment is
    marked ``after_gap`` in the index. With ``block`` (offline files, ``ingest.overflow: block``) ``offer``
    waits for room instead, so a file read faster than the store takes uploads is recorded whole.
    Segments go to the store through its spool (see the module docstring); ``segments_written`` counts
    those stored at once, ``segments_spooled`` those waiting on local disk for the store.
    """

    def __init__(
        self, camera_id: str, store: ObjectStore, config: RecordingsConfig, *, tmp_dir: str | Path | None = None,
        block: bool = False,
    ) -> None:
        self.camera_id = camera_id
        self.store = store
        self.config = config
        self.block = block
        self._tmp = recording_workdir(store, tmp_dir)
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._cond = threading.Condition()
        self._packets_queued = 0
        self._dropping = False
        self._closed = False
        self.dropped = 0
        self.segments_written = 0
        self.segments_spooled = 0
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
            seg = self._segment = _Segment(path, self._info, captured_at, pts, self._gap, self.camera_id,
                                           self.config.prefix)
            self._need_key = self._gap = False
        frame_s = 1.0 / self._info.fps if self._info.fps else 0.04
        seg.write(packet, captured_at, frame_s)

    def _abandon_segment(self) -> None:
        seg, self._segment = self._segment, None
        self._need_key = True
        if seg is not None:
            seg.finish()
            seg.discard()

    def _finish_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is None:
            return
        seg.finish()
        if seg.packets == 0:
            seg.discard()
            return
        entry = seg.entry()
        if store_segment(self.store, seg.path, entry, self.camera_id, self.config.prefix, seg.content_type):
            self.segments_written += 1
            log.debug("%s: stored %s (%.1f s, %d packets)", self.camera_id, entry.key, entry.duration_s, seg.packets)
        elif seg.path.exists() and spool_of(self.store) is not None:
            self.upload_errors += 1  # the spool was full while stopping: the next start recovers the file
            log.error("%s: segment %s left in %s for the next start", self.camera_id, entry.key, seg.path.parent)
        elif seg.path.exists():
            self.upload_errors += 1  # a store without a spool refused it: nothing to keep it in
            seg.discard()
        else:
            self.segments_spooled += 1
            log.info("%s: segment %s spooled until the store takes it", self.camera_id, entry.key)


def store_segment(store: ObjectStore, path: Path, entry: SegmentEntry, camera_id: str, prefix: str,
                  content_type: str) -> bool:
    """Hand a finished segment file over (it is moved, never copied twice): True when stored now, False when
    spooled or refused (a store without a spool; logged). Its sidecar goes once the file is taken."""
    try:
        stored = put_then(store, entry.key, path, [hook(INDEX_HOOK, index_payload(prefix, camera_id, entry))],
                          hooks={INDEX_HOOK: index_segment}, content_type=content_type, move=True,
                          metadata={"camera-id": camera_id, "start": entry.start, "end": entry.end})
    except StoreError as exc:
        log.warning("%s: could not store segment %s: %s", camera_id, entry.key, exc)
        return False
    _sidecar(path).unlink(missing_ok=True)
    return stored


def recover_segments(store: ObjectStore, folder: Path) -> int:
    """Finish the segments a crashed run left open in ``folder`` and hand them over; how many were recovered.

    Each leftover's sidecar says which camera, key, start and codec it has; the file is read up to its last
    complete packet to count packets and keyframes and measure its duration. Empty or unreadable leftovers are
    removed (logged)."""
    recovered = 0
    for stale in folder.glob(".tmp-tubeline-rec-*"):
        stale.unlink(missing_ok=True)
    for sidecar in sorted(folder.glob("tubeline-rec-*.json")):
        path = sidecar.with_name(sidecar.name[: -len(".json")])
        try:
            meta = json.loads(sidecar.read_bytes())
            entry = _probe(path, meta)
        except (OSError, ValueError, KeyError, av.error.FFmpegError) as exc:
            log.warning("recordings: cannot recover %s (%s); removed", path.name, exc)
            entry = None
        if entry is None:
            path.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            continue
        store_segment(store, path, entry, meta["camera_id"], meta["prefix"], meta["content_type"])
        log.warning("recordings: recovered %s after a crash (%.1f s, %d packets)", entry.key, entry.duration_s,
                    entry.packets)
        recovered += 1
    return recovered


def _probe(path: Path, meta: dict[str, Any]) -> SegmentEntry | None:
    """The index entry of a segment file cut short by a crash, or None when it holds no video packet."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    packets = keyframes = 0
    first: float | None = None
    last = 0.0
    frame_s = 1.0 / float(meta["fps"]) if meta.get("fps") else 0.04
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base or TS_TIME_BASE
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            t = float(packet.pts * tb)
            first = t if first is None else min(first, t)
            last = max(last, t)
            packets += 1
            keyframes += int(bool(packet.is_keyframe))
    if packets == 0 or first is None:
        return None
    start = datetime.fromisoformat(meta["start"])
    duration = last - first + frame_s
    return SegmentEntry(
        key=meta["key"], start=start.isoformat(), end=(start + timedelta(seconds=duration)).isoformat(),
        start_pts=float(meta["start_pts"]), duration_s=round(duration, 6), packets=packets, keyframes=keyframes,
        bytes=path.stat().st_size, codec=meta["codec"], width=int(meta["width"]), height=int(meta["height"]),
        after_gap=bool(meta["after_gap"]),
    )
