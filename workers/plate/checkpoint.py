"""Plates without a vehicle box: whole-frame plate reading for checkpoint cameras (卡口, close-up views).

At a checkpoint the camera looks at the front or rear of one vehicle at a time, so close that the vehicle
detector often finds nothing (a car that fills the frame is not a "car" to a COCO detector) and the plate stage
never runs. For cameras listed in ``plate.checkpoint_cameras`` the plate worker therefore also reads the frames
topic: every ``plate.checkpoint_every_n``-th frame goes through the whole-frame plate pipeline (detector pyramid,
:mod:`models.plates.detector`), and each plate read joins a **plate track** of its own:

* a read continues the camera's open plate track whose last box overlaps it (IoU ≥ 0.1) or whose last text is
  the same up to look-alikes, seen at most ``plate.checkpoint_gap_s`` earlier; otherwise it opens a new one;
* the plate track ID is ``{camera}.plate.{milliseconds of its first read}`` — derived from the frame, so a
  redelivered frame (same capture time) reopens the same ID;
* from there the track is voted, published and matched against the hotlists exactly like a vehicle track, and the
  same-plate rule (``plate.dedupe_window_s``) joins a plate track and a vehicle track of the same camera that read
  the same plate into one (whichever published first keeps the ID).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from pipeline.core import box_iou

MIN_IOU = 0.1


@dataclass
class OpenPlate:
    track_id: str
    box: np.ndarray
    canonical: str
    last_seen: datetime


@dataclass
class PlateTracker:
    """Open plate tracks of one camera (see the module docstring)."""

    camera_id: str
    gap_s: float
    canonical: Callable[[str], str]
    open: list[OpenPlate] = field(default_factory=list)

    def assign(self, box: np.ndarray, text: str, when: datetime) -> str:
        """The plate track a read at ``box`` with ``text`` captured ``when`` belongs to (opened if new)."""
        self.open = [t for t in self.open if abs((when - t.last_seen).total_seconds()) <= self.gap_s]
        key = self.canonical(text)
        best: OpenPlate | None = None
        best_score = 0.0
        for track in self.open:
            overlap = float(box_iou(box[None].astype(np.float32), track.box[None].astype(np.float32))[0, 0])
            score = overlap + (1.0 if track.canonical == key else 0.0)
            if (overlap >= MIN_IOU or track.canonical == key) and score > best_score:
                best, best_score = track, score
        if best is None:
            best = OpenPlate(f"{self.camera_id}.plate.{int(when.timestamp() * 1000)}", box, key, when)
            self.open.append(best)
        best.box, best.canonical, best.last_seen = np.asarray(box, np.float32), key, max(best.last_seen, when)
        return best.track_id


def context_view(image: np.ndarray, box: tuple[float, float, float, float], grow: float = 2.5) -> np.ndarray:
    """The evidence view around a plate (the vehicle's front or rear): its box grown ``grow`` times in width and
    ``4 × grow`` in height, clipped to the frame. Checkpoint reads have no vehicle crop to point at."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, half_w, half_h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * grow / 2, (y2 - y1) * grow * 2
    return image[max(0, int(cy - half_h)) : min(height, int(cy + half_h)),
                 max(0, int(cx - half_w)) : min(width, int(cx + half_w))]
