"""A synthetic camera scene whose every object position is known exactly, for the synopsis API and UI tests.

One minute of camera ``cam-c`` (10 fps, 320x240, H.264 in 10-s MPEG-TS segments with the ingest recorder's
day index) starting at ``S0``: a textured, static background and three coloured movers on straight lines at
different times. Their track summaries (a box every 0.2 s, as the detect worker publishes at 5 fps) go
through the real indexer into the Parquet catalog, which is where the API's synopsis builder reads tracks.

Because :func:`box_at` gives the true box of every mover at any moment, a test can check that a click on
the synopsis leads to the right object *and* to the moment of the original recording where that object
really was under the click.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from pipeline.bus.base import Bus
from pipeline.config import TubelineConfig
from pipeline.store.base import ObjectStore
from pipeline.synopsis.index import SynopsisIndex, SynopsisObject
from schemas.topics import TRACKS
from schemas.tracks import TrackSummary
from tests.unit.test_api_support import T0, write_recording

CAMERA = "cam-c"
S0 = T0 + timedelta(hours=1)
FPS = 10
W, H = 320, 240
SECONDS = 60
SEGMENT_S = 10


@dataclass(frozen=True)
class Mover:
    number: int
    class_name: str
    colour: str
    bgr: tuple[int, int, int]
    t0: float
    t1: float
    start: tuple[float, float]  # top-left corner at t0
    end: tuple[float, float]  # top-left corner at t1
    w: float
    h: float

    @property
    def track_id(self) -> str:
        return f"{CAMERA}:syn.0:{self.number}"


MOVERS = (
    Mover(1, "person", "red", (40, 40, 220), 2.0, 14.0, (20, 150), (260, 150), 24, 56),
    Mover(2, "car", "green", (40, 200, 40), 20.0, 30.0, (266, 40), (20, 40), 48, 30),
    Mover(3, "person", "blue", (220, 80, 30), 35.0, 50.0, (40, 110), (250, 170), 24, 56),
)


def box_at(mover: Mover, t: float) -> tuple[float, float, float, float] | None:
    """The mover's true box at ``t`` seconds after S0 (None when it is not in view)."""
    if not mover.t0 <= t <= mover.t1:
        return None
    a = (t - mover.t0) / (mover.t1 - mover.t0)
    x = mover.start[0] + a * (mover.end[0] - mover.start[0])
    y = mover.start[1] + a * (mover.end[1] - mover.start[1])
    return (x, y, x + mover.w, y + mover.h)


def background() -> np.ndarray:
    rng = np.random.default_rng(11)
    tiles = rng.integers(70, 150, size=(H // 8, W // 8, 1), dtype=np.uint8)
    image = np.repeat(np.repeat(tiles, 8, axis=0), 8, axis=1)
    return np.repeat(image, 3, axis=2).copy()


def frame_at(t: float, bg: np.ndarray) -> np.ndarray:
    image = bg.copy()
    for mover in MOVERS:
        box = box_at(mover, t)
        if box is not None:
            x1, y1, x2, y2 = (round(v) for v in box)
            image[y1:y2, x1:x2] = mover.bgr
    return image


def write_scene_recording(store: ObjectStore) -> int:
    """The minute of video as recorder segments + day index; returns the number of segments."""
    bg = background()
    return write_recording(store, CAMERA, S0, SECONDS, fps=FPS, segment_s=SEGMENT_S, size=(W, H), crf=18,
                           frame=lambda n: frame_at(n / FPS, bg))


def summaries() -> list[TrackSummary]:
    """Each mover's track summary, a path point every 0.2 s (5 fps analysis)."""
    out = []
    for m in MOVERS:
        steps = round((m.t1 - m.t0) / 0.2)
        path = []
        for i in range(steps + 1):
            box = box_at(m, m.t0 + i * 0.2)
            assert box is not None
            path.append((round(i * 0.2, 3), *(round(v, 2) for v in box)))
        out.append(TrackSummary(
            track_id=m.track_id, segment=0, camera_id=CAMERA, class_name=m.class_name,
            class_id=0 if m.class_name == "person" else 2, started_at=S0 + timedelta(seconds=m.t0),
            ended_at=S0 + timedelta(seconds=m.t1), frame_width=W, frame_height=H, path=tuple(path),  # type: ignore[arg-type]
            mean_score=0.9, best_crop_key=None, colour=m.colour, colour_confidence=0.8,  # type: ignore[arg-type]
            vehicle_type="car" if m.class_name == "car" else None, closed_reason="lost",
        ))
    return out


def setup_synopsis_scene(config: TubelineConfig, bus: Bus, store: ObjectStore) -> None:
    """Recording in the store; track summaries published and catalogued by the real indexer."""
    from tests.flow.test_api_scene import index_all, publish

    write_scene_recording(store)
    tracks = summaries()
    publish(bus, [(TRACKS.name, s) for s in tracks])
    index_all(config, bus, store, len(tracks))


def mover_of(track_id: str) -> Mover:
    return next(m for m in MOVERS if m.track_id == track_id)


def seconds_after_s0(when: datetime) -> float:
    return (when - S0).total_seconds()


def colour_centre(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 45) -> tuple[float, float] | None:
    """Centre (x, y) of the pixels within ``tolerance`` of ``bgr`` (None when fewer than 40 match)."""
    diff = np.abs(image.astype(np.int16) - np.array(bgr, np.int16)).max(axis=2)
    ys, xs = np.nonzero(diff <= tolerance)
    if len(xs) < 40:
        return None
    return float(xs.mean()), float(ys.mean())


def centre(box: Any) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def clear_points(index: SynopsisIndex, obj: SynopsisObject, count: int = 3) -> list[tuple[int, tuple[int, ...]]]:
    """Up to ``count`` (frame, box) of ``obj``, spread over its time, where no other object's box is within 4 px
    of its centre (where objects overlap, a click rightly picks the one drawn on top)."""
    free = []
    for k, box in enumerate(obj.boxes):
        frame = obj.first_frame + k
        cx, cy = centre(box)
        others = [o.boxes[frame - o.first_frame] for o in index.objects
                  if o is not obj and o.first_frame <= frame <= o.last_frame]
        if not any(b[0] - 4 <= cx <= b[2] + 4 and b[1] - 4 <= cy <= b[3] + 4 for b in others):
            free.append((frame, box))
    assert free, f"{obj.track_id} is never clear of other objects"
    step = max(1, len(free) // count)
    return free[step // 2::step][:count]
