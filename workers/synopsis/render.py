"""Rendering: object mattes from the recordings (pass 2), then synopsis frames composited and encoded to H.264.

:func:`extract_crops` decodes the window once more and, for every (tube, synopsis frame) that is
shown, cuts the object's grown box out of the source frame nearest its time and mattes it against
the background of that time (:mod:`workers.synopsis.matte`). :func:`render_video` then builds each
synopsis frame: the time-lapse background, the objects from far to near (ascending box bottom) with
their alpha, and the original-time labels (nearest first, none covering another); frames are encoded
with libx264 (yuv420p, ``+faststart``) so browsers play the file directly.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import cv2
import numpy as np

from pipeline.config.synopsis import MatteConfig, RenderConfig
from workers.synopsis.arrange import Arrangement
from workers.synopsis.matte import Backgrounds, CropCache, grown_region, object_matte
from workers.synopsis.tubes import Tube
from workers.synopsis.video import FootageReader

log = logging.getLogger(__name__)

MAX_GAP_S = 1.0
"""A shown frame whose nearest recorded frame is further away than this has no pixels (gap in the recording)."""


@dataclass
class CropStats:
    wanted: int = 0
    cut: int = 0
    missing: int = 0


def extract_crops(
    reader: FootageReader, tubes: list[Tube], arrangement: Arrangement, backgrounds: Backgrounds,
    settings: MatteConfig, cache: CropCache, source_fps: float, progress: Callable[[float], None] | None = None,
) -> CropStats:
    """Pass 2: the matte of every shown (tube, frame), into ``cache`` under ``(tube.index, k)``
    (``progress`` gets 0..1)."""
    requests = [(float(t), tube.index, k) for tube in tubes if arrangement.tube_start(tube) >= 0
                for k, t in enumerate(tube.times)]
    requests.sort()
    stats = CropStats(wanted=len(requests))
    if not requests:
        return stats
    by_index = {tube.index: tube for tube in tubes}
    half = 0.5 / source_fps
    size = reader.size
    cursor = 0

    def wanted(t: float) -> bool:
        return cursor < len(requests) and requests[cursor][0] <= t + half

    for decoded in reader.frames(requests[0][0] - half, requests[-1][0] + half, wanted):
        if decoded.image is None:
            continue
        while cursor < len(requests) and requests[cursor][0] <= decoded.time_s + half:
            when, index, k = requests[cursor]
            cursor += 1
            if decoded.time_s - when > MAX_GAP_S:
                stats.missing += 1
                continue
            box = by_index[index].boxes[k]
            x0, y0, x1, y1 = grown_region(box, settings.margin, size)
            crop = decoded.image[y0:y1, x0:x1]
            local = (int(round(box[0])) - x0, int(round(box[1])) - y0, int(round(box[2])) - x0, int(round(box[3])) - y0)
            alpha = object_matte(crop, backgrounds.at(decoded.time_s, (x0, y0, x1, y1)), local, settings)
            cache.put((index, k), x0, y0, crop, alpha)
            stats.cut += 1
        if progress is not None:
            progress(cursor / len(requests))
    stats.missing += len(requests) - cursor
    cache.finish_writing()
    return stats


LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_SAMPLE = "00:00:00"


def label_scale(height: int) -> float:
    """Font scale of the time labels for a frame ``height`` pixels high (readable down to 288 lines)."""
    return max(0.33, 0.45 * height / 576)


def label_rect(box: np.ndarray | tuple[float, ...], width: int, height: int, scale: float,
               text: str = LABEL_SAMPLE) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the label plate of an object whose box is ``box``: above the box, or just
    inside its top when there is no room above."""
    (tw, th), base = cv2.getTextSize(text, LABEL_FONT, scale, 1)
    x = int(min(max(0, box[0]), max(0, width - tw - 2)))
    y = int(box[1]) - 3
    if y - th - base < 0:
        y = min(height - base - 1, int(box[1]) + th + 3)
    return x, y - th - 2, x + tw + 2, y + base - 1


def _label(frame: np.ndarray, text: str, box: np.ndarray, scale: float) -> None:
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = label_rect(box, width, height, scale, text)
    cv2.rectangle(frame, (x0, y0), (x1, y1), (24, 24, 24), -1)
    _, base = cv2.getTextSize(text, LABEL_FONT, scale, 1)
    cv2.putText(frame, text, (x0 + 1, y1 - base), LABEL_FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _labels(frame: np.ndarray, active: list[tuple[Tube, int]], zone: ZoneInfo, scale: float) -> None:
    """Original-time labels, nearest object first; a label that would cover an earlier one is left out
    (in a crowd the labels would otherwise hide the objects)."""
    height, width = frame.shape[:2]
    placed = np.empty((0, 4), dtype=np.int64)
    for tube, k in reversed(active):
        rect = np.array(label_rect(tube.boxes[k], width, height, scale))
        if len(placed) and np.any((placed[:, 0] < rect[2]) & (rect[0] < placed[:, 2]) &
                                  (placed[:, 1] < rect[3]) & (rect[1] < placed[:, 3])):
            continue
        placed = np.vstack([placed, rect])
        when = datetime.fromtimestamp(float(tube.times[k]), tz=UTC).astimezone(zone)
        _label(frame, when.strftime("%H:%M:%S"), tube.boxes[k], scale)


def _composite(frame: np.ndarray, x: int, y: int, bgr: np.ndarray, alpha: np.ndarray) -> None:
    h, w = alpha.shape
    roi = frame[y:y + h, x:x + w]
    a = alpha.astype(np.float32)[:, :, None] * (1.0 / 255.0)
    roi[:] = (roi * (1.0 - a) + bgr * a + 0.5).astype(np.uint8)


@dataclass
class RenderStats:
    frames: int = 0
    drawn: int = 0


def schedule(tubes: list[Tube], arrangement: Arrangement) -> tuple[dict[int, list[tuple[Tube, int]]], int]:
    """Synopsis frame → [(tube, k)] shown in it, and the number of frames (last shown frame + 1)."""
    shown: dict[int, list[tuple[Tube, int]]] = defaultdict(list)
    total = 0
    for tube in tubes:
        start = arrangement.tube_start(tube)
        if start < 0:
            continue
        for k in range(tube.frames):
            shown[start + k].append((tube, k))
        total = max(total, start + tube.frames)
    return shown, total


def render_video(
    path: Path, tubes: list[Tube], arrangement: Arrangement, backgrounds: Backgrounds, cache: CropCache, *,
    fps: float, size: tuple[int, int], window: tuple[float, float], settings: RenderConfig,
    progress: Callable[[float], None] | None = None,
) -> RenderStats:
    """Composite and encode every synopsis frame to ``path`` (MP4, H.264 yuv420p, faststart; ``progress``
    gets 0..1)."""
    shown, total = schedule(tubes, arrangement)
    total = max(total, 1)
    width, height = size
    zone = ZoneInfo(settings.label_timezone)
    scale = label_scale(height)
    stats = RenderStats()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": settings.preset, "crf": str(settings.crf)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for n in range(total):
            source_t = window[0] + (window[1] - window[0]) * n / max(1, total - 1)
            frame = backgrounds.at(source_t)
            active = sorted(shown.get(n, ()), key=lambda item: (int(round(item[0].boxes[item[1], 3])), item[0].index))
            for tube, k in active:
                entry = cache.get((tube.index, k))
                if entry is not None:
                    _composite(frame, *entry)
                    stats.drawn += 1
            if settings.labels:
                _labels(frame, active, zone, scale)
            video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
            video_frame.pts = n
            for packet in stream.encode(video_frame):
                container.mux(packet)
            stats.frames += 1
            if progress is not None:
                progress(stats.frames / total)
        for packet in stream.encode():
            container.mux(packet)
    return stats
