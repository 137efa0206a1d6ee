"""Redaction of exported copies: bystanders' faces and plates not named in the case, blurred beyond recognition.

A :class:`Redaction` runs a face detector and (optionally) a plate recogniser on every frame of a clip, follows
each detected object through the clip with a greedy IoU tracker (objects are numbered in the order they first
appear: ``face:1``, ``face:2``, ``plate:1`` …, the same numbers the preview shows), and blurs every object unless
it is on the keep list — or, for plates, its text is named in the case — and not on the blur list. A blurred
region is the detected box grown by a quarter on each side, pixelated to 3×3 blocks and then smoothed, which
leaves no face a detector (or a person) can find. In a clip an object stays blurred between its detections and
for ``HOLD_FRAMES`` before and after them, so a frame where the detector missed it is covered. The clip is re-encoded to H.264 (CRF 18); the original
recording in the store is never touched.

Detectors are passed in (``face_detect(bgr) -> boxes``, ``plate_read(bgr) -> [(box, text)]``) so this module
stays free of model code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from pipeline.cases.builder import iter_frames

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
FaceDetect = Callable[[np.ndarray], list[Box]]
PlateRead = Callable[[np.ndarray], list[tuple[Box, str]]]
EXPAND = 0.25
BLOCKS = 3
"""A blurred region is pixelated to BLOCKS×BLOCKS: at 6×6 CenterFace still found 3 of 6 blurred faces of 30 px."""
_MS = Fraction(1, 1000)


def iou(a: Box, b: Box) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def blur_region(image: np.ndarray, box: Box, expand: float = EXPAND) -> None:
    """Pixelate and smooth ``box`` (grown by ``expand`` of its size on each side) in place."""
    h, w = image.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    x1, y1 = int(max(0, box[0] - expand * bw)), int(max(0, box[1] - expand * bh))
    x2, y2 = int(min(w, box[2] + expand * bw)), int(min(h, box[3] + expand * bh))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    region = image[y1:y2, x1:x2]
    small = cv2.resize(region, (BLOCKS, BLOCKS), interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    k = max(3, (min(x2 - x1, y2 - y1) // 4) | 1)
    image[y1:y2, x1:x2] = cv2.GaussianBlur(blocks, (k, k), 0)


@dataclass
class Tracked:
    label: str
    box: Box
    text: str = ""
    last_frame: int = 0


@dataclass
class ObjectTracker:
    """Greedy IoU association of detections across frames; labels in order of first appearance per kind."""

    min_iou: float = 0.2
    max_gap: int = 15
    objects: list[Tracked] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def update(self, frame: int, kind: str, boxes: list[tuple[Box, str]]) -> list[Tracked]:
        live = [o for o in self.objects if o.label.startswith(kind + ":") and frame - o.last_frame <= self.max_gap]
        out = []
        taken: set[int] = set()
        for box, text in sorted(boxes, key=lambda bt: (bt[0][0], bt[0][1])):
            best, score = None, self.min_iou
            for n, obj in enumerate(live):
                if n not in taken and (s := iou(obj.box, box)) >= score:
                    best, score = n, s
            if best is None:
                self.counts[kind] = self.counts.get(kind, 0) + 1
                obj = Tracked(f"{kind}:{self.counts[kind]}", box, text, frame)
                self.objects.append(obj)
            else:
                taken.add(best)
                obj = live[best]
                obj.box, obj.last_frame = box, frame
                obj.text = obj.text or text
            out.append(obj)
        return out


@dataclass
class Redaction:
    """What to blur in the copies of one item's media (see the module docstring)."""

    face_detect: FaceDetect | None
    plate_read: PlateRead | None
    named_plates: Collection[str] = ()
    keep: Collection[str] = ()
    blur: Collection[str] = ()

    def decide(self, obj: Tracked) -> bool:
        """True when ``obj`` is blurred."""
        if obj.label in self.blur:
            return True
        if obj.label in self.keep:
            return False
        return not (obj.label.startswith("plate:") and obj.text and obj.text.upper() in self.named_plates)

    def objects(self, tracker: ObjectTracker, frame_no: int, image: np.ndarray) -> list[Tracked]:
        found = []
        if self.face_detect is not None:
            found += tracker.update(frame_no, "face", [(b, "") for b in self.face_detect(image)])
        if self.plate_read is not None:
            found += tracker.update(frame_no, "plate", self.plate_read(image))
        return found

    def apply(self, image: np.ndarray, objects: list[Tracked]) -> tuple[np.ndarray, list[str]]:
        out = image.copy()
        blurred = []
        for obj in objects:
            if self.decide(obj):
                blur_region(out, obj.box)
                blurred.append(obj.label)
        return out, blurred

    def image(self, bgr: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        objects = self.objects(ObjectTracker(), 0, bgr)
        out, blurred = self.apply(bgr, objects)
        return out, _summary(objects, set(blurred), 1)

    def frames(self, src: Path) -> Iterator[tuple[int, float, np.ndarray, list[Tracked]]]:
        """(frame number, seconds into the clip, BGR frame, objects in it) for every frame of ``src``."""
        tracker = ObjectTracker()
        for n, t, image in iter_frames(src):
            yield n, t, image, self.objects(tracker, n, image)

    def clip(self, src: Path, dst: Path) -> dict[str, Any]:
        """Write the redacted, re-encoded copy of ``src`` to ``dst`` (MP4, H.264); what was blurred.

        Two passes: the first detects and tracks every object, the second decodes again and blurs each object
        in every frame from ``HOLD_FRAMES`` before its first detection to as many after its last, its box
        interpolated between detections — so a frame where the detector missed a face still has it blurred."""
        seen: dict[str, list[tuple[int, Box]]] = {}
        tracked: dict[str, Tracked] = {}
        for n, _, _, objects in self.frames(src):
            for obj in objects:
                seen.setdefault(obj.label, []).append((n, obj.box))
                tracked[obj.label] = obj
        doomed = {label: path for label, path in seen.items() if self.decide(tracked[label])}
        with av.open(str(src)) as probe:
            rate = probe.streams.video[0].average_rate or 10
        frames = _encode(src, dst, rate, lambda n, image: [b for p in doomed.values() if (b := box_at(p, n))])
        return _summary(list(tracked.values()), set(doomed), frames)


HOLD_FRAMES = 15
"""Frames before an object's first and after its last detection in which it is still blurred."""


def box_at(path: list[tuple[int, Box]], n: int) -> Box | None:
    """An object's box at frame ``n``: interpolated between its detections, held ``HOLD_FRAMES`` at the ends."""
    if n < path[0][0] - HOLD_FRAMES or n > path[-1][0] + HOLD_FRAMES:
        return None
    if n <= path[0][0]:
        return path[0][1]
    for (f0, b0), (f1, b1) in zip(path, path[1:], strict=False):
        if f0 <= n <= f1:
            w = (n - f0) / max(1, f1 - f0)
            return tuple(a + w * (b - a) for a, b in zip(b0, b1, strict=True))  # type: ignore[return-value]
    return path[-1][1]


def _encode(src: Path, dst: Path, rate: Any, boxes: Callable[[int, np.ndarray], list[Box]]) -> int:
    """Decode ``src`` again, blur ``boxes(n, image)`` in each frame, encode H.264 to ``dst``; frames written."""
    out = av.open(str(dst), mode="w", format="mp4", options={"movflags": "+faststart"})
    stream = None
    frames, last_pts = 0, -1
    try:
        for n, t, image in iter_frames(src):
            if stream is None:
                stream = out.add_stream("libx264", rate=max(1, round(float(rate))))
                stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                stream.pix_fmt, stream.time_base = "yuv420p", _MS
                stream.options = {"preset": "veryfast", "crf": "18"}
            for box in boxes(n, image):
                blur_region(image, box)
            crop = np.ascontiguousarray(image[: stream.height, : stream.width], dtype=np.uint8)
            video = av.VideoFrame.from_ndarray(crop, format="bgr24")
            last_pts = max(round(t * 1000), last_pts + 1)
            video.pts, video.time_base = last_pts, _MS
            out.mux(stream.encode(video.reformat(format="yuv420p")))
            frames += 1
        if stream is not None:
            out.mux(stream.encode(None))
    finally:
        out.close()
    return frames


def _summary(objects: list[Tracked], blurred: set[str], frames: int) -> dict[str, Any]:
    labels = sorted({o.label for o in objects})
    return {"frames": frames, "objects": labels, "blurred": sorted(blurred),
            "kept": [label for label in labels if label not in blurred],
            "faces_blurred": sum(1 for b in blurred if b.startswith("face:")),
            "plates_blurred": sum(1 for b in blurred if b.startswith("plate:")),
            "method": f"pixelate {BLOCKS}x{BLOCKS} + gaussian over the box grown by {EXPAND:.0%}; re-encoded H.264 CRF 18"}
