"""Reading the recordings of a window: which segments, at what rate and size, and their frames with UTC times.

Ingest keeps the original stream in segments with a per-day index (``pipeline.recordings``). A
frame's UTC time is the segment's start plus its pts offset from the segment's first packet — the
same mapping ``cut_clip`` uses, and the same wall clock that stamped the analysed frames the tracks
were built from. Frames are decoded sequentially (one segment downloaded at a time into a temporary
folder) and converted only when wanted, scaled to the output size by swscale in the same pass.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from pipeline.recordings import TS_TIME_BASE, SegmentEntry, segments_between
from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Footage:
    """The recorded segments overlapping a window and what they hold."""

    camera_id: str
    segments: tuple[SegmentEntry, ...]
    fps: float
    width: int
    height: int

    @property
    def start_s(self) -> float:
        return self.segments[0].start_dt.timestamp()

    @property
    def end_s(self) -> float:
        return max(s.end_dt.timestamp() for s in self.segments)


def find_footage(store: ObjectStore, camera_id: str, start: datetime, end: datetime, prefix: str) -> Footage:
    """The recording of ``camera_id`` in [start, end); ``LookupError`` when nothing was recorded."""
    segments = segments_between(store, camera_id, start, end, prefix)
    if not segments:
        msg = f"no recording of camera {camera_id} between {start.isoformat()} and {end.isoformat()}"
        raise LookupError(msg)
    rates = [s.packets / s.duration_s for s in segments if s.duration_s > 0 and s.packets > 1]
    fps = round(float(np.median(rates)), 3) if rates else 25.0
    main = max(segments, key=lambda s: s.duration_s)
    return Footage(camera_id, tuple(segments), fps, main.width, main.height)


def output_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """``width × height`` fitted into the box (never upscaled), both sides even (yuv420p)."""
    scale = min(1.0, max_width / width, max_height / height)
    out_w = max(2, int(round(width * scale / 2)) * 2)
    out_h = max(2, int(round(height * scale / 2)) * 2)
    return out_w, out_h


@dataclass
class DecodedAt:
    """One decoded source frame: UTC time (POSIX seconds) and, when wanted, the BGR image at output size."""

    time_s: float
    image: np.ndarray | None


class FootageReader:
    """Sequential decoding of the footage between two times."""

    def __init__(self, store: ObjectStore, footage: Footage, size: tuple[int, int]) -> None:
        self.store = store
        self.footage = footage
        self.size = size
        self.frames_decoded = 0
        self.frames_converted = 0
        self.decode_errors = 0

    def frames(self, start_s: float, end_s: float, wanted: Callable[[float], bool]) -> Iterator[DecodedAt]:
        """Frames with time in [start_s, end_s], in time order; ``image`` is set where ``wanted(time)``."""
        with tempfile.TemporaryDirectory(prefix="tubeline-synopsis-") as tmp:
            for entry in self.footage.segments:
                if entry.end_dt.timestamp() < start_s or entry.start_dt.timestamp() > end_s:
                    continue
                local = Path(tmp) / ("segment" + Path(entry.key).suffix)
                self.store.download(entry.key, local)
                try:
                    yield from self._segment(local, entry, start_s, end_s, wanted)
                finally:
                    local.unlink(missing_ok=True)

    def _segment(
        self, local: Path, entry: SegmentEntry, start_s: float, end_s: float, wanted: Callable[[float], bool]
    ) -> Iterator[DecodedAt]:
        origin = entry.start_dt.timestamp()
        width, height = self.size
        with av.open(str(local)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb: Fraction = stream.time_base or TS_TIME_BASE
            base_pts: int | None = None
            for packet in container.demux(stream):
                if packet.pts is not None and base_pts is None and packet.size > 0:
                    base_pts = packet.pts
                try:
                    decoded = packet.decode()
                except (av.error.FFmpegError, ValueError):
                    self.decode_errors += 1
                    continue
                for frame in decoded:
                    if frame.pts is None or base_pts is None:
                        continue
                    t = origin + float((frame.pts - base_pts) * tb)
                    if t > end_s + 1e-6:
                        return
                    self.frames_decoded += 1
                    if t < start_s - 1e-6:
                        continue
                    image = None
                    if wanted(t):
                        image = frame.reformat(width=width, height=height, format="bgr24").to_ndarray()
                        self.frames_converted += 1
                    yield DecodedAt(t, image)
