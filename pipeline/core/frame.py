"""A decoded video frame with the timestamps every later stage relies on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded picture from one camera.

    ``image`` is BGR uint8 (H×W×3). ``pts`` is the presentation time in seconds on the
    source's own clock (stream time); ``captured_at`` is the UTC wall-clock time the frame
    was captured (or, for files, the simulated capture time). ``sequence`` counts frames
    published for this camera since the ingest session started.
    """

    camera_id: str
    sequence: int
    pts: float
    captured_at: datetime
    image: np.ndarray
    codec: str = ""
    keyframe: bool = False

    def __post_init__(self) -> None:
        if self.captured_at.tzinfo is None:
            msg = "Frame.captured_at must be timezone-aware (UTC)"
            raise ValueError(msg)
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            msg = f"Frame.image must be HxWx3 uint8 BGR, got {self.image.shape} {self.image.dtype}"
            raise ValueError(msg)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
