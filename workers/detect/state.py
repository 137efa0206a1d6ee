"""Per-camera tracking state of the detect worker, and its snapshots in the object store.

A :class:`CameraState` holds the camera's tracker, the bookkeeping of every live track (box path,
class votes, crops announced, the best moment held back for the track's end, colour) and the last frame
it processed. It is what moves between workers: it is written to ``state/detect/{camera}.json`` before
each offset commit and loaded by whichever worker owns the camera next (see ``docs/design/detect.md``).

**Snapshots are data, never code.** The document is JSON (``format`` ``tubeline.detect.camera-state``,
``version`` 2): numbers, strings, and held crops as base64 JPEG bytes, validated field by field on load
(:class:`CameraStateDoc`, unknown fields refused, every float finite). Loading is refused — and the
worker starts the camera afresh with a new tracking epoch — when the object is larger than
:data:`MAX_SNAPSHOT_BYTES` (checked from its size before it is fetched), is not JSON, names another
format or an unknown version, or does not validate; :class:`SnapshotRefused` says why. Version 1 was a
Python pickle at ``state/detect/{camera}.pkl``: such files are never read (unpickling runs code).

Snapshots are written without reading the stored one first: the worker reads a camera's snapshot only
when it first sees the camera (start, rebalance, new owner), never on the write path.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from pipeline.config.detect import CONFUSABLE_CLASSES, TrackerConfig
from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectNotFound, ObjectStore
from pipeline.tracking import ByteTracker, TrackerState, TrackRecordState
from schemas.common import CAMERA_ID_PATTERN, ID_PATTERN, SESSION_PATTERN, STORE_KEY_PATTERN
from schemas.ids import make_track_id

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "state/detect"
SNAPSHOT_FORMAT: Final = "tubeline.detect.camera-state"
SNAPSHOT_VERSION: Final = 2
"""Version 1 was a pickle (``{camera}.pkl``); it is never read."""
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
"""Largest snapshot a worker loads. A camera's state is a few KB plus at most one held JPEG crop per live
track (tens of KB each), so a real one stays far below this."""
_MAX_ITEMS = 100_000  # list lengths inside a snapshot (tracks, path points, class votes)


class SnapshotRefused(DocumentRefused):
    """A stored snapshot that is not loaded (too large, not JSON, unknown format or version, invalid)."""


class TrackCounter:
    """Track-number source injected into the tracker (no class globals); its position is in the snapshot."""

    def __init__(self, start: int = 1) -> None:
        self.next = start

    def __call__(self) -> int:
        value = self.next
        self.next += 1
        return value


@dataclass
class CropCandidate:
    """One moment of a track worth a crop: the encoded crop and what its ``objects.v1`` message needs.

    Announced at once, or held in :attr:`TrackRecord.held` until the track ends; a held one travels in the
    snapshot (JPEG bytes included), so a worker that replays the frames after it announces the same crop."""

    sequence: int
    captured_at: datetime
    box: tuple[float, float, float, float]
    score: float
    quality: float
    jpeg: bytes
    colour: str
    colour_confidence: float
    upper_colour: str | None = None  # persons: top and trousers (workers.detect.colours)
    lower_colour: str | None = None


@dataclass
class TrackRecord:
    """What the worker remembers about one live track (segment)."""

    track_id: str
    number: int
    started_at: datetime
    last_seen: datetime
    frame_w: int
    frame_h: int
    segment: int = 0
    class_votes: dict[int, float] = field(default_factory=dict)  # class id -> summed detection score
    path: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    score_sum: float = 0.0
    score_count: int = 0
    best_quality: float = 0.0
    best_crop_key: str | None = None
    colour: str = "unknown"
    colour_confidence: float = 0.0
    upper_colour: str | None = None
    lower_colour: str | None = None
    crops_emitted: int = 0
    held: CropCandidate | None = None  # the best moment not announced yet (hold_best_crop)

    @property
    def class_id(self) -> int:
        """The track's class: highest summed detection score over the segment's frames (ties: lower id),
        so a vehicle the detector calls car in one frame and truck in the next reports one class."""
        return max(self.class_votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]

    def observe(self, when: datetime, box: tuple[float, float, float, float], class_id: int, score: float) -> None:
        self.last_seen = when
        self.class_votes[class_id] = self.class_votes.get(class_id, 0.0) + score
        self.score_sum += score
        self.score_count += 1
        t = max(0.0, (when - self.started_at).total_seconds())
        if self.path and t < self.path[-1][0]:
            t = self.path[-1][0]
        self.path.append((round(t, 3), *box))

    def next_segment(self, when: datetime) -> None:
        """Start the next segment of a long track (after its summary was emitted)."""
        self.segment += 1
        self.started_at = when
        self.path = []
        self.class_votes = {}
        self.score_sum = 0.0
        self.score_count = 0


@dataclass
class CameraState:
    camera_id: str
    ingest_session: str
    epoch: int
    tracker: ByteTracker
    counter: TrackCounter
    last_sequence: int = -1
    tracks: dict[int, TrackRecord] = field(default_factory=dict)

    @classmethod
    def new(cls, camera_id: str, ingest_session: str, epoch: int, config: TrackerConfig,
            class_groups: tuple[tuple[str, ...], ...] = CONFUSABLE_CLASSES, *, next_track: int = 1) -> CameraState:
        """A fresh state; ``class_groups`` are the tracker's association groups (``detect.confusable_classes``)."""
        counter = TrackCounter(next_track)
        tracker = ByteTracker(**config.model_dump(), class_groups=class_groups, id_source=counter)
        return cls(camera_id, ingest_session, epoch, tracker, counter)

    def track_id(self, number: int) -> str:
        """``{camera}:{ingest session}.{epoch}:{n}`` — unique and deterministic for this state's frames."""
        return make_track_id(self.camera_id, f"{self.ingest_session}.{self.epoch}", number)


# -- the snapshot document: data only, every field typed and bounded -------------------------------
_Float = Annotated[float, Field(allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=0)]
_Box = tuple[_Float, _Float, _Float, _Float]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class HeldCropDoc(_Doc):
    sequence: _Count
    captured_at: AwareDatetime
    box: _Box
    score: _Float
    quality: _Float
    jpeg_base64: str = Field(max_length=MAX_SNAPSHOT_BYTES)
    colour: str = Field(max_length=32)
    colour_confidence: _Float
    upper_colour: str | None = Field(None, max_length=32)  # persons; absent in snapshots written before them
    lower_colour: str | None = Field(None, max_length=32)


class TrackRecordDoc(_Doc):
    track_id: str = Field(pattern=ID_PATTERN)
    number: int = Field(ge=1)
    started_at: AwareDatetime
    last_seen: AwareDatetime
    frame_w: int = Field(ge=1, le=100_000)
    frame_h: int = Field(ge=1, le=100_000)
    segment: _Count
    class_votes: list[tuple[int, _Float]] = Field(max_length=_MAX_ITEMS)
    path: list[tuple[_Float, _Float, _Float, _Float, _Float]] = Field(max_length=_MAX_ITEMS)
    score_sum: _Float
    score_count: _Count
    best_quality: _Float
    best_crop_key: str | None = Field(pattern=STORE_KEY_PATTERN)
    colour: str = Field(max_length=32)
    colour_confidence: _Float
    upper_colour: str | None = Field(None, max_length=32)
    lower_colour: str | None = Field(None, max_length=32)
    crops_emitted: _Count
    held: HeldCropDoc | None


class TrackerTrackDoc(_Doc):
    mean: list[_Float] = Field(min_length=8, max_length=8)
    covariance: list[_Float] = Field(min_length=64, max_length=64)
    group: int
    track_id: int | None = Field(ge=1)
    state: Literal["tentative", "tracked", "lost"]
    first_timestamp: _Float
    last_timestamp: _Float
    hits: int = Field(ge=1)
    class_votes: list[tuple[int, _Float]] = Field(min_length=1, max_length=_MAX_ITEMS)


class CameraStateDoc(_Doc):
    """The stored form of a :class:`CameraState` (see the module docstring)."""

    format: Literal["tubeline.detect.camera-state"]
    version: Literal[2]
    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    ingest_session: str = Field(pattern=SESSION_PATTERN)
    epoch: int = Field(ge=0)
    last_sequence: int = Field(ge=-1)
    next_track: int = Field(ge=1)
    tracker_time: _Float | None
    tracker_tracks: list[TrackerTrackDoc] = Field(max_length=_MAX_ITEMS)
    tracks: list[TrackRecordDoc] = Field(max_length=_MAX_ITEMS)


_CAMERA_STATE_DOC = TypeAdapter(CameraStateDoc)


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC)


def _crop_doc(crop: CropCandidate) -> HeldCropDoc:
    return HeldCropDoc(sequence=crop.sequence, captured_at=crop.captured_at, box=crop.box, score=crop.score,
                       quality=crop.quality, jpeg_base64=base64.b64encode(crop.jpeg).decode("ascii"),
                       colour=crop.colour, colour_confidence=crop.colour_confidence,
                       upper_colour=crop.upper_colour, lower_colour=crop.lower_colour)


def _crop_of(doc: HeldCropDoc) -> CropCandidate:
    try:
        jpeg = base64.b64decode(doc.jpeg_base64, validate=True)
    except binascii.Error as exc:
        msg = f"held crop is not base64 ({exc})"
        raise SnapshotRefused(msg) from None
    return CropCandidate(doc.sequence, _utc(doc.captured_at), doc.box, doc.score, doc.quality, jpeg, doc.colour,
                         doc.colour_confidence, doc.upper_colour, doc.lower_colour)


def _record_doc(record: TrackRecord) -> TrackRecordDoc:
    return TrackRecordDoc(
        track_id=record.track_id, number=record.number, started_at=record.started_at, last_seen=record.last_seen,
        frame_w=record.frame_w, frame_h=record.frame_h, segment=record.segment,
        class_votes=list(record.class_votes.items()), path=list(record.path), score_sum=record.score_sum,
        score_count=record.score_count, best_quality=record.best_quality, best_crop_key=record.best_crop_key,
        colour=record.colour, colour_confidence=record.colour_confidence, upper_colour=record.upper_colour,
        lower_colour=record.lower_colour, crops_emitted=record.crops_emitted,
        held=_crop_doc(record.held) if record.held is not None else None,
    )


def _record_of(doc: TrackRecordDoc) -> TrackRecord:
    return TrackRecord(
        track_id=doc.track_id, number=doc.number, started_at=_utc(doc.started_at), last_seen=_utc(doc.last_seen),
        frame_w=doc.frame_w, frame_h=doc.frame_h, segment=doc.segment, class_votes=dict(doc.class_votes),
        path=list(doc.path), score_sum=doc.score_sum, score_count=doc.score_count, best_quality=doc.best_quality,
        best_crop_key=doc.best_crop_key, colour=doc.colour, colour_confidence=doc.colour_confidence,
        upper_colour=doc.upper_colour, lower_colour=doc.lower_colour, crops_emitted=doc.crops_emitted, held=_crop_of(doc.held) if doc.held is not None else None,
    )


def encode_snapshot(state: CameraState) -> bytes:
    """The snapshot document of ``state`` as UTF-8 JSON (floats written exactly, so a round trip is lossless)."""
    tracker = state.tracker.export_state()
    doc = CameraStateDoc(
        format=SNAPSHOT_FORMAT, version=SNAPSHOT_VERSION, camera_id=state.camera_id,
        ingest_session=state.ingest_session, epoch=state.epoch, last_sequence=state.last_sequence,
        next_track=state.counter.next, tracker_time=tracker.time,
        tracker_tracks=[TrackerTrackDoc(mean=list(t.mean), covariance=list(t.covariance), group=t.group,
                                        track_id=t.track_id, state=t.state,  # type: ignore[arg-type]
                                        first_timestamp=t.first_timestamp, last_timestamp=t.last_timestamp,
                                        hits=t.hits, class_votes=list(t.class_votes))
                        for t in tracker.tracks],
        tracks=[_record_doc(r) for r in state.tracks.values()],
    )
    return doc.model_dump_json().encode("utf-8")


def decode_snapshot(data: bytes, config: TrackerConfig,
                    class_groups: tuple[tuple[str, ...], ...] = CONFUSABLE_CLASSES) -> CameraState:
    """The state in a snapshot document, on a tracker built from ``config``; raises SnapshotRefused."""
    doc = read_document(data, _CAMERA_STATE_DOC, max_bytes=MAX_SNAPSHOT_BYTES, version=SNAPSHOT_VERSION,
                        format_name=SNAPSHOT_FORMAT, error=SnapshotRefused)
    state = CameraState.new(doc.camera_id, doc.ingest_session, doc.epoch, config, class_groups,
                            next_track=doc.next_track)
    saved = TrackerState(doc.tracker_time, tuple(
        TrackRecordState(tuple(t.mean), tuple(t.covariance), t.group, t.track_id, t.state, t.first_timestamp,
                         t.last_timestamp, t.hits, tuple(t.class_votes))
        for t in doc.tracker_tracks))
    try:
        state.tracker.restore_state(saved)
    except ValueError as exc:
        msg = f"invalid tracker state ({exc})"
        raise SnapshotRefused(msg) from None
    state.last_sequence = doc.last_sequence
    records = [_record_of(r) for r in doc.tracks]
    state.tracks = {r.number: r for r in records}
    if len(state.tracks) != len(records):
        msg = "two track records share a number"
        raise SnapshotRefused(msg)
    return state


def snapshot_key(camera_id: str) -> str:
    return f"{SNAPSHOT_PREFIX}/{camera_id}.json"


def save_snapshot(store: ObjectStore, state: CameraState) -> None:
    """Write the camera's snapshot (the stored one is not read first: whoever owns the camera writes it)."""
    store.put(snapshot_key(state.camera_id), encode_snapshot(state), content_type="application/json",
              metadata={"session": state.ingest_session, "sequence": str(state.last_sequence),
                        "format": f"{SNAPSHOT_FORMAT}.v{SNAPSHOT_VERSION}"})


def load_snapshot(store: ObjectStore, camera_id: str, config: TrackerConfig,
                  class_groups: tuple[tuple[str, ...], ...] = CONFUSABLE_CLASSES) -> CameraState | None:
    """The camera's stored state; None when there is none. Raises SnapshotRefused for one that is not loaded
    (its size is checked before it is fetched, its content before anything is built from it)."""
    key = snapshot_key(camera_id)
    try:
        size = store.stat(key).size
        if size > MAX_SNAPSHOT_BYTES:
            msg = f"{size} bytes is more than the {MAX_SNAPSHOT_BYTES} a snapshot may have"
            raise SnapshotRefused(msg)
        data = store.get(key)
    except ObjectNotFound:
        return None
    state = decode_snapshot(data, config, class_groups)
    if state.camera_id != camera_id:
        msg = f"the snapshot at {key} is of camera {state.camera_id!r}"
        raise SnapshotRefused(msg)
    return state
