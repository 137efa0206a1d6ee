"""Per-camera tracking state of the detect worker, and its snapshots in the object store.

A :class:`CameraState` holds the camera's tracker, the bookkeeping of every live track (box path,
class votes, crops announced, the best moment held back for the track's end, colour) and the last frame
it processed. It is what moves between workers:
it is pickled to ``state/detect/{camera}.pkl`` before each offset commit and loaded by whichever
worker owns the camera next (see ``docs/design/detect.md``). Snapshots are internal, written and read
only by detect workers through the project's own object store.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.config.detect import CONFUSABLE_CLASSES, TrackerConfig
from pipeline.store.base import ObjectNotFound, ObjectStore
from pipeline.tracking import ByteTracker
from schemas.ids import make_track_id

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "state/detect"
SNAPSHOT_VERSION = 1


class TrackCounter:
    """Picklable track-number source injected into the tracker (no class globals)."""

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
    version: int = SNAPSHOT_VERSION

    @classmethod
    def new(cls, camera_id: str, ingest_session: str, epoch: int, config: TrackerConfig,
            class_groups: tuple[tuple[str, ...], ...] = CONFUSABLE_CLASSES) -> CameraState:
        """A fresh state; ``class_groups`` are the tracker's association groups (``detect.confusable_classes``)."""
        counter = TrackCounter()
        tracker = ByteTracker(**config.model_dump(), class_groups=class_groups, id_source=counter)
        return cls(camera_id, ingest_session, epoch, tracker, counter)

    def track_id(self, number: int) -> str:
        """``{camera}:{ingest session}.{epoch}:{n}`` — unique and deterministic for this state's frames."""
        return make_track_id(self.camera_id, f"{self.ingest_session}.{self.epoch}", number)


def snapshot_key(camera_id: str) -> str:
    return f"{SNAPSHOT_PREFIX}/{camera_id}.pkl"


def save_snapshot(store: ObjectStore, state: CameraState) -> bool:
    """Write the snapshot unless a newer one (same session, later sequence) is already stored."""
    existing = load_snapshot(store, state.camera_id)
    if (
        existing is not None
        and existing.ingest_session == state.ingest_session
        and existing.last_sequence > state.last_sequence
    ):
        log.info("camera %s: stored snapshot is newer (%d > %d); not overwriting",
                 state.camera_id, existing.last_sequence, state.last_sequence)
        return False
    store.put(snapshot_key(state.camera_id), pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL),
              content_type="application/octet-stream",
              metadata={"session": state.ingest_session, "sequence": str(state.last_sequence)})
    return True


def load_snapshot(store: ObjectStore, camera_id: str) -> CameraState | None:
    try:
        data = store.get(snapshot_key(camera_id))
    except ObjectNotFound:
        return None
    try:
        state = pickle.loads(data)  # noqa: S301 - written only by detect workers into our own store
    except Exception as exc:  # noqa: BLE001 - a corrupt snapshot means starting fresh, loudly
        log.error("camera %s: unreadable detect snapshot (%s); starting a new tracking epoch", camera_id, exc)
        return None
    if not isinstance(state, CameraState) or state.version != SNAPSHOT_VERSION:
        log.warning("camera %s: snapshot has an unknown version; starting a new tracking epoch", camera_id)
        return None
    return state


def delete_snapshot(store: ObjectStore, camera_id: str) -> None:
    store.delete(snapshot_key(camera_id))
