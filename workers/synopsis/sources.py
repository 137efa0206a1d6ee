"""Where a synopsis gets its tracks: a small :class:`TrackSource` protocol, its implementations, and selection.

The builder asks a source for the :class:`schemas.tracks.TrackSummary` messages of one camera in a
time window and for the plate reads of those tracks. Implementations here:

- :class:`MemoryTrackSource`: summaries held in memory (tests, the API with its own query, the
  worker's cache); :meth:`MemoryTrackSource.from_jsonl` reads a JSON-lines file of summaries.
- :class:`BusTrackSource`: reads ``tubeline.tracks.v1`` (and ``tubeline.plates.v1``) from the start
  with a throw-away consumer group; Kafka keeps tracks for 7 days.

The Parquet catalog plugs in by implementing the same two methods. :func:`select_tracks` turns
summaries into :class:`TrackPath` objects: deduplicated (at-least-once delivery repeats messages),
segments of one track joined, clipped to the window and filtered as the request says.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.bus.base import Bus
from pipeline.geometry import ground_point, point_in_polygon
from pipeline.synopsis.request import SynopsisRequest
from schemas.plates import PlateRead, normalise_plate
from schemas.topics import PLATES, TRACKS
from schemas.tracks import TrackSummary

log = logging.getLogger(__name__)


class TrackSource(Protocol):
    """Track summaries and plate reads of a camera in a time window."""

    def tracks(self, camera_id: str, start: datetime, end: datetime) -> list[TrackSummary]:
        """Summaries of ``camera_id`` whose time span overlaps [start, end) (duplicates allowed)."""
        ...

    def plates(self, camera_id: str, start: datetime, end: datetime) -> dict[str, str]:
        """track_id → normalised plate text of the best read, for tracks of ``camera_id`` in [start, end)."""
        ...


def _overlaps(summary: TrackSummary, camera_id: str, start: datetime, end: datetime) -> bool:
    return summary.camera_id == camera_id and summary.ended_at >= start and summary.started_at < end


class MemoryTrackSource:
    """Summaries and plate reads held in memory; also the worker's cache (``add``, ``forget_before``)."""

    def __init__(self, summaries: Iterable[TrackSummary] = (), plate_reads: Iterable[PlateRead] = ()) -> None:
        self._summaries: dict[str, TrackSummary] = {}
        self._plates: dict[str, PlateRead] = {}
        for summary in summaries:
            self.add(summary)
        for read in plate_reads:
            self.add_plate(read)

    def add(self, summary: TrackSummary) -> None:
        self._summaries[summary.idempotency_key()] = summary

    def add_plate(self, read: PlateRead) -> None:
        known = self._plates.get(read.track_id)
        if known is None or read.revision >= known.revision:
            self._plates[read.track_id] = read

    def forget_before(self, cutoff: datetime) -> int:
        """Drop summaries that ended before ``cutoff``; returns how many."""
        old = [k for k, s in self._summaries.items() if s.ended_at < cutoff]
        for key in old:
            del self._summaries[key]
        for track_id in [t for t, r in self._plates.items() if r.captured_at < cutoff]:
            del self._plates[track_id]
        return len(old)

    def __len__(self) -> int:
        return len(self._summaries)

    def tracks(self, camera_id: str, start: datetime, end: datetime) -> list[TrackSummary]:
        return [s for s in self._summaries.values() if _overlaps(s, camera_id, start, end)]

    def plates(self, camera_id: str, start: datetime, end: datetime) -> dict[str, str]:
        return {t: r.text for t, r in self._plates.items() if r.camera_id == camera_id}

    @classmethod
    def from_jsonl(cls, path: str | Path) -> MemoryTrackSource:
        """A JSON-lines file: one ``TrackSummary`` (or ``PlateRead``) document per line."""
        source = cls()
        with Path(path).open("rb") as fh:
            for number, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    if b'"plate_read"' in line:
                        source.add_plate(PlateRead.from_json(line))
                    else:
                        source.add(TrackSummary.from_json(line))
                except ValueError as exc:
                    msg = f"{path}:{number}: not a track summary or plate read: {exc}"
                    raise ValueError(msg) from None
        return source


class BusTrackSource:
    """Reads the tracks and plates topics from the start with a fresh consumer group (nothing committed)."""

    def __init__(self, bus: Bus, *, quiet_s: float = 2.0, max_wait_s: float = 60.0) -> None:
        self.bus = bus
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s

    def _read(self, topic: str) -> list[bytes]:
        values: list[bytes] = []
        group = f"tubeline-synopsis-read-{uuid.uuid4().hex[:10]}"
        deadline = time.monotonic() + self.max_wait_s
        with self.bus.consumer([topic], group) as consumer:
            seen_any, empty_assigned = False, 0
            while time.monotonic() < deadline:
                batch = consumer.poll(timeout=self.quiet_s, max_records=1000)
                if batch:
                    seen_any = True
                    values.extend(m.value for m in batch)
                    continue
                if seen_any:
                    break
                # A new group may poll empty while it joins; once it owns partitions, two quiet polls
                # in a row mean the topic is empty.
                if consumer.assignment():
                    empty_assigned += 1
                    if empty_assigned >= 2:
                        break
        return values

    def tracks(self, camera_id: str, start: datetime, end: datetime) -> list[TrackSummary]:
        found = []
        for value in self._read(TRACKS.name):
            try:
                summary = TrackSummary.from_json(value)
            except ValueError:
                log.warning("skipping an invalid track summary on %s", TRACKS.name)
                continue
            if _overlaps(summary, camera_id, start, end):
                found.append(summary)
        return found

    def plates(self, camera_id: str, start: datetime, end: datetime) -> dict[str, str]:
        source = MemoryTrackSource()
        for value in self._read(PLATES.name):
            try:
                read = PlateRead.from_json(value)
            except ValueError:
                continue
            if read.camera_id == camera_id:
                source.add_plate(read)
        return source.plates(camera_id, start, end)


@dataclass
class TrackPath:
    """One track (its segments joined), clipped to the window, in absolute time."""

    track_id: str
    segments: tuple[int, ...]
    camera_id: str
    class_name: str
    colour: str
    started_at: datetime
    ended_at: datetime
    frame_width: int
    frame_height: int
    times: np.ndarray
    """POSIX seconds of each path point, non-decreasing."""
    boxes: np.ndarray
    """``(n, 4)`` boxes ``[x1, y1, x2, y2]`` in the analysed frame's pixels."""
    clipped: bool = False
    plate: str | None = None

    @property
    def start_s(self) -> float:
        return float(self.times[0])

    @property
    def end_s(self) -> float:
        return float(self.times[-1])


def _join(summaries: list[TrackSummary]) -> tuple[np.ndarray, np.ndarray]:
    times: list[float] = []
    boxes: list[tuple[float, float, float, float]] = []
    for summary in sorted(summaries, key=lambda s: (s.segment, s.started_at)):
        base = summary.started_at.timestamp()
        for t, x1, y1, x2, y2 in summary.path:
            stamp = base + t
            if times and stamp < times[-1]:
                stamp = times[-1]
            times.append(stamp)
            boxes.append((x1, y1, x2, y2))
    return np.asarray(times, dtype=np.float64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def join_segments(summaries: Iterable[TrackSummary]) -> list[TrackPath]:
    """Deduplicate by ``{track_id}/{segment}`` (last copy wins) and join each track's segments."""
    unique: dict[str, TrackSummary] = {}
    for summary in summaries:
        unique[summary.idempotency_key()] = summary
    by_track: dict[str, list[TrackSummary]] = defaultdict(list)
    for summary in unique.values():
        by_track[summary.track_id].append(summary)
    paths = []
    for track_id, parts in by_track.items():
        parts.sort(key=lambda s: s.segment)
        times, boxes = _join(parts)
        votes: dict[str, int] = defaultdict(int)
        for part in parts:
            votes[part.class_name] += len(part.path)
        first = parts[0]
        colour = max(parts, key=lambda s: s.colour_confidence).colour
        paths.append(TrackPath(
            track_id=track_id, segments=tuple(p.segment for p in parts), camera_id=first.camera_id,
            class_name=max(votes, key=lambda c: votes[c]), colour=colour,
            started_at=min(p.started_at for p in parts), ended_at=max(p.ended_at for p in parts),
            frame_width=first.frame_width, frame_height=first.frame_height, times=times, boxes=boxes,
        ))
    paths.sort(key=lambda p: (p.start_s, p.track_id))
    return paths


def clip_path(path: TrackPath, start: datetime, end: datetime) -> TrackPath | None:
    """The part of ``path`` inside [start, end); None when nothing is left."""
    t0, t1 = start.timestamp(), end.timestamp()
    keep = (path.times >= t0) & (path.times < t1)
    if keep.all():
        return path
    if not keep.any():
        return None
    times, boxes = path.times[keep], path.boxes[keep]
    return TrackPath(
        path.track_id, path.segments, path.camera_id, path.class_name, path.colour,
        datetime.fromtimestamp(float(times[0]), tz=UTC), datetime.fromtimestamp(float(times[-1]), tz=UTC),
        path.frame_width, path.frame_height, times, boxes, clipped=True, plate=path.plate,
    )


def in_zone(path: TrackPath, zone: tuple[tuple[float, float], ...]) -> bool:
    """True when the ground point (bottom centre of the box) of any path point is inside ``zone``."""
    return any(
        point_in_polygon(ground_point(box, path.frame_width, path.frame_height), zone) for box in path.boxes
    )


def select_tracks(source: TrackSource, request: SynopsisRequest) -> list[TrackPath]:
    """The tracks a request shows, in original order (start time, then track ID)."""
    summaries = source.tracks(request.camera_id, request.start, request.end)
    plates = source.plates(request.camera_id, request.start, request.end) if request.plate else {}
    wanted = request.wanted_classes()
    chosen = []
    for path in join_segments(summaries):
        if wanted is not None and path.class_name not in wanted:
            continue
        if request.colours and path.colour not in request.colours:
            continue
        if request.plate:
            plate = plates.get(path.track_id)
            if plate is None or normalise_plate(request.plate) not in normalise_plate(plate):
                continue
            path.plate = plate
        clipped = clip_path(path, request.start, request.end)
        if clipped is None:
            continue
        if request.zone is not None and not in_zone(clipped, request.zone):
            continue
        chosen.append(clipped)
    log.info("synopsis %s: %d track(s) selected from %d summaries", request.camera_id, len(chosen), len(summaries))
    return chosen
