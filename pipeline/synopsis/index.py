"""The synopsis index: every object in a synopsis, where and when it is shown, and when it really happened.

Stored beside the video as ``synopsis/{camera}/{id}.json`` (:class:`SynopsisIndex`, version 1). Each
:class:`SynopsisObject` has its track, its original UTC time range, its time-lapse speed, its first
synopsis frame and one box (output pixels) per synopsis frame it is shown in. :func:`object_at`
answers a click at synopsis time ``t`` and pixel ``(x, y)`` with the object drawn there (the top one
when several overlap, as rendered: the box whose bottom is lowest) and the exact original time of
that frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, Strict

from pipeline.store.base import ObjectStore
from pipeline.synopsis.request import SynopsisRequest
from schemas.common import CameraId, UtcDateTime, WireModel

INDEX_VERSION: Literal[1] = 1

Seconds = Annotated[float, Strict(), Field(ge=0.0)]
IntBox = tuple[int, int, int, int]


class SynopsisObject(WireModel):
    """One object (track) in the synopsis."""

    track_id: str = Field(title="Track ID", description="The tracker's ID ({camera}:{session}:{n}).")
    segments: tuple[int, ...] = Field(title="Segments", description="Track-summary segments joined into this object.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera.")
    class_name: str = Field(title="Class", description="Detector class.")
    colour: str = Field(title="Colour", description="Dominant colour.")
    plate: str | None = Field(default=None, title="Plate", description="Plate text when the request filtered by plate.")
    original_start: UtcDateTime = Field(title="Original start", description="First moment of the object (UTC).")
    original_end: UtcDateTime = Field(title="Original end", description="Last moment of the object (UTC).")
    clipped: bool = Field(title="Clipped", description="The track reaches outside the window; only its inside is shown.")
    speed: Annotated[float, Strict(), Field(ge=1.0)] = Field(
        title="Speed", description="Time-lapse factor (1: real time)."
    )
    group: int = Field(title="Group", description="Objects of one group were together and move together.")
    first_frame: int = Field(title="First frame", description="Synopsis frame the object first appears in.", ge=0)
    first_frame_time: UtcDateTime = Field(title="First frame time", description="Original time shown at first_frame.")
    synopsis_start_s: Seconds = Field(title="Synopsis start", description="Seconds into the synopsis it appears.")
    synopsis_end_s: Seconds = Field(title="Synopsis end", description="Seconds into the synopsis it disappears.")
    boxes: tuple[IntBox, ...] = Field(
        title="Boxes", description="[x1, y1, x2, y2] in synopsis pixels, one per frame from first_frame.", min_length=1
    )

    @property
    def last_frame(self) -> int:
        return self.first_frame + len(self.boxes) - 1

    def original_time(self, frame: int, fps: float) -> datetime:
        """The original UTC time shown at synopsis ``frame``."""
        when = self.first_frame_time + timedelta(seconds=(frame - self.first_frame) * self.speed / fps)
        return min(max(when, self.original_start), self.original_end)


class SynopsisMetrics(WireModel):
    """Measured figures of one synopsis (see ``workers.synopsis.metrics``)."""

    source_s: Seconds = Field(title="Source length", description="Length of the source window with recordings.")
    synopsis_s: Seconds = Field(title="Synopsis length", description="Length of the synopsis video.")
    condensation: Seconds = Field(title="Condensation ratio", description="source_s / synopsis_s.")
    objects: int = Field(title="Objects", description="Objects shown.", ge=0)
    left_out: int = Field(title="Left out", description="Objects the optimiser left out (drop_objects).", ge=0)
    groups: int = Field(title="Groups", description="Groups of interacting objects.", ge=0)
    time_lapsed: int = Field(title="Time-lapsed objects", description="Objects shown faster than real time.", ge=0)
    collision_ratio: Seconds = Field(
        title="Collision ratio", description="Share of the objects' area another object overlaps, in the synopsis."
    )
    source_collision_ratio: Seconds = Field(
        title="Source collision ratio", description="The same on the original timeline (natural overlap)."
    )
    chronology_violations: int = Field(title="Chronology violations", description="Pairs shown out of order.", ge=0)
    chronology_pairs: int = Field(title="Pairs", description="All pairs of objects.", ge=0)
    energy: float = Field(title="Energy", description="Final arrangement energy.")
    greedy_energy: float = Field(title="Greedy energy", description="Energy after the greedy placement.")
    missing_crops: int = Field(title="Missing crops", description="Shown frames without recorded pixels.", ge=0)
    arrange_s: Seconds = Field(title="Arrange time", description="Seconds to arrange.")
    background_s: Seconds = Field(title="Background time", description="Seconds for pass 1 (median backgrounds).")
    matte_s: Seconds = Field(title="Matte time", description="Seconds for pass 2 (object crops and mattes).")
    composite_s: Seconds = Field(title="Composite time", description="Seconds to composite and encode the frames.")
    render_s: Seconds = Field(title="Render time", description="Seconds for backgrounds, mattes and encoding.")
    build_s: Seconds = Field(title="Build time", description="Seconds for the whole build.")
    render_fps: Seconds = Field(title="Render speed", description="Synopsis frames per second of render_s.")


class SynopsisIndex(WireModel):
    """Everything needed to play a synopsis and map a click back to the original."""

    kind: Literal["synopsis-index"] = Field(default="synopsis-index", title="Kind", description="Document kind.")
    version: Literal[1] = Field(default=INDEX_VERSION, title="Version", description="Index format version.")
    synopsis_id: str = Field(title="Synopsis ID", description="The request's stable ID.")
    camera_id: CameraId = Field(title="Camera ID", description="The camera.")
    request: SynopsisRequest = Field(title="Request", description="What was asked.")
    created_at: UtcDateTime = Field(title="Created", description="When it was built (UTC).")
    video_key: str = Field(title="Video key", description="Object-store key of the MP4.")
    window_start: UtcDateTime = Field(title="Window start", description="Start of the recorded source window.")
    window_end: UtcDateTime = Field(title="Window end", description="End of the recorded source window.")
    fps: Annotated[float, Strict(), Field(gt=0)] = Field(title="Frame rate", description="Synopsis frames per second.")
    width: int = Field(title="Width", description="Synopsis width in pixels.", ge=2)
    height: int = Field(title="Height", description="Synopsis height in pixels.", ge=2)
    frames: int = Field(title="Frames", description="Number of synopsis frames.", ge=1)
    source_width: int = Field(title="Source width", description="Width of the recording.", ge=1)
    source_height: int = Field(title="Source height", description="Height of the recording.", ge=1)
    metrics: SynopsisMetrics = Field(title="Metrics", description="Measured figures.")
    objects: tuple[SynopsisObject, ...] = Field(title="Objects", description="Every object shown, in original order.")

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)


@dataclass(frozen=True)
class ObjectHit:
    """The answer to a click: the object (and its position in the index), the synopsis frame, its box there and
    the original time."""

    object: SynopsisObject
    number: int
    frame: int
    box: IntBox
    original_time: datetime


def object_at(index: SynopsisIndex, t: float, x: float, y: float) -> ObjectHit | None:
    """The object drawn at pixel ``(x, y)`` at synopsis time ``t`` (seconds), or None.

    Frame ``n`` is on screen during ``[n / fps, (n + 1) / fps)``. When boxes overlap, the object drawn
    last (lowest box bottom, then later in original order) wins, as in the rendering.
    """
    if t < 0:
        return None
    frame = int(t * index.fps + 1e-9)
    best: tuple[int, int] | None = None  # (box bottom, number) of the top object so far
    for number, obj in enumerate(index.objects):
        if not obj.first_frame <= frame <= obj.last_frame:
            continue
        box = obj.boxes[frame - obj.first_frame]
        if box[0] <= x <= box[2] and box[1] <= y <= box[3] and (best is None or (box[3], number) > best):
            best = (box[3], number)
    if best is None:
        return None
    return object_hit(index, best[1], t)


def object_hit(index: SynopsisIndex, number: int, t: float | None = None) -> ObjectHit:
    """Object ``number`` of the index at synopsis time ``t`` (clamped to when it is shown; None: the middle of
    its appearance): its frame, box and original time there. Raises ``IndexError`` for an unknown number."""
    if not 0 <= number < len(index.objects):
        msg = f"the synopsis has no object {number} (it has {len(index.objects)})"
        raise IndexError(msg)
    obj = index.objects[number]
    frame = (obj.first_frame + obj.last_frame) // 2 if t is None else int(t * index.fps + 1e-9)
    frame = min(max(frame, obj.first_frame), obj.last_frame)
    return ObjectHit(obj, number, frame, obj.boxes[frame - obj.first_frame], obj.original_time(frame, index.fps))


def load_synopsis_index(store: ObjectStore, key: str) -> SynopsisIndex:
    """The index stored under ``key`` (``SynopsisKeys.of(camera, id).index``); raises ``ObjectNotFound``."""
    return SynopsisIndex.from_json(store.get(key))
