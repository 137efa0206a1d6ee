"""One detector, several views of the frame, one fused answer: vehicles in close-up and a type that holds.

A COCO detector with a fixed square input (NanoDet: 416×416, *stretched*) fails in two ways on the close-up views of
checkpoint cameras and on wide frames, both measured on ``benchmarks/detect/data/vehicles.csv``:

* a vehicle that fills most of the frame is larger than anything the network learnt to box (NanoDet's largest
  stride sees objects up to about the input size, and a car cut by the frame edges rarely looked like that in COCO);
* stretching a wide frame to a square squashes a saloon's front into a taller, boxier shape, and the detector
  calls it ``truck`` (two close-up saloons of the dev set; with the aspect kept they are ``car``).

So the frame is shown to the detector as several *views* and the answers are fused:

``stretch``
    the frame as it is (the detector's own resize): what the detector has always seen.
``square``
    the frame centred on a grey square canvas of its longer side (aspect kept: a letterbox).
``square@F``
    the same with a canvas F times the longer side: everything looks 1/F as large, so a vehicle that fills the
    frame becomes a vehicle of ordinary size, at the price of small objects falling below what the detector sees.

Fusion (:func:`fuse`): the boxes of all views, mapped back to frame pixels, are clustered greedily by score: a box
joins the cluster of a kept box of the same class *group* (car/truck/bus are one group: the detector confuses
them; bicycle/motorcycle another) when they overlap at IoU ≥ ``iou``. A cluster reports the box of its best member,
its best score, and as class the one with the largest summed score over its members — so a saloon boxed ``truck``
0.36 when stretched and ``car`` 0.40 and 0.59 in the square views is a ``car``. Each view keeps the detector's own
score floor; a detection seen in one view only is kept as it is. Views after the first contribute vehicles only
(``EXTRA_CLASSES``): the first view alone decides persons and every other class.

Cost: one detector run per view (batched). Measured figures and the default choice are in ``docs/detect.md``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.protocols import Detector
from pipeline.core import Detections, box_iou

logger = logging.getLogger(__name__)

DEFAULT_GROUPS: tuple[tuple[str, ...], ...] = (("car", "truck", "bus"), ("bicycle", "motorcycle"))
EXTRA_CLASSES = ("car", "truck", "bus", "motorcycle", "bicycle")
"""What views after the first contribute: the square views find close-up vehicles and judge their shape, but on a
surveillance frame they add false persons (measured: person precision 0.83 → 0.61 on the annotated vtest frames)."""
PAD_VALUE = 114  # grey canvas (the YOLO/NanoDet letterbox colour)
_VIEW_RE = re.compile(r"^(stretch|square)(?:@(\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class View:
    """``kind`` is ``stretch`` or ``square``; ``scale`` ≥ 1 is the canvas side over the frame's longer side."""

    kind: str
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> View:
        match = _VIEW_RE.match(text.strip())
        if not match:
            msg = f"unknown detector view {text!r}: use stretch, square or square@F (F between 1 and 4)"
            raise ValueError(msg)
        kind, scale = match.group(1), float(match.group(2) or 1.0)
        if kind == "stretch" and scale != 1.0:
            msg = f"view {text!r}: only square views take a canvas factor"
            raise ValueError(msg)
        if not 1.0 <= scale <= 4.0:
            msg = f"view {text!r}: the canvas factor must be between 1 and 4"
            raise ValueError(msg)
        return cls(kind, scale)

    def __str__(self) -> str:
        return self.kind if self.scale == 1.0 else f"{self.kind}@{self.scale:g}"

    def render(self, image: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The view's image and the frame's (x, y) offset inside it."""
        if self.kind == "stretch":
            return image, 0, 0
        height, width = image.shape[:2]
        side = int(round(max(height, width) * self.scale))
        canvas = np.full((side, side, 3), PAD_VALUE, dtype=image.dtype)
        x, y = (side - width) // 2, (side - height) // 2
        canvas[y : y + height, x : x + width] = image
        return canvas, x, y


def _group_of(names: Sequence[str], groups: Sequence[Sequence[str]]) -> np.ndarray:
    """Per class id, a group number: classes of one confusable group share it, every other class is alone."""
    out = np.arange(len(names), dtype=np.int32) + len(groups)
    for number, group in enumerate(groups):
        for i, name in enumerate(names):
            if name in group:
                out[i] = number
    return out


def fuse(
    parts: Sequence[Detections],
    class_names: Sequence[str],
    groups: Sequence[Sequence[str]] = DEFAULT_GROUPS,
    iou: float = 0.5,
    source: str = "",
    shape_true: Sequence[bool] | None = None,
) -> Detections:
    """One detection per object from several views' detections (already in frame pixels); see the module doc.

    ``shape_true[k]`` says whether view ``k`` kept the frame's aspect: when a cluster has members from such views,
    only they vote on its class (a stretched view distorts the shape the class is judged from)."""
    shape = list(shape_true) if shape_true is not None else [True] * len(parts)
    shape = [flag for flag, p in zip(shape, parts, strict=True) if len(p)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return Detections.empty(source, tuple(class_names))
    true_shape = np.concatenate([np.full(len(p), flag) for p, flag in zip(parts, shape, strict=True)])
    boxes = np.concatenate([p.xyxy for p in parts]).astype(np.float32)
    scores = np.concatenate([p.confidence for p in parts]).astype(np.float32)
    classes = np.concatenate([p.class_id for p in parts]).astype(np.int32)
    group = _group_of(class_names, groups)[classes]
    order = np.argsort(-scores, kind="stable")
    overlaps = box_iou(boxes, boxes)
    owner = np.full(len(boxes), -1, dtype=np.int64)
    kept: list[int] = []
    for i in order:
        for k in kept:
            if group[k] == group[i] and overlaps[i, k] >= iou:
                owner[i] = k
                break
        else:
            owner[i] = i
            kept.append(int(i))
    fused_class = np.empty(len(kept), dtype=np.int32)
    for n, k in enumerate(kept):
        members = owner == k
        if (members & true_shape).any():
            members &= true_shape
        votes = np.bincount(classes[members], weights=scores[members], minlength=len(class_names))
        fused_class[n] = int(np.argmax(votes))
    index = np.asarray(kept, dtype=np.int64)
    return Detections(
        xyxy=boxes[index], confidence=scores[index], class_id=fused_class, source=source,
        class_names=tuple(class_names),
    )


class MultiViewDetector:
    """A :class:`models.protocols.Detector` that runs ``base`` on several views of each frame and fuses them."""

    def __init__(
        self,
        base: Detector,
        views: Sequence[View | str],
        groups: Sequence[Sequence[str]] = DEFAULT_GROUPS,
        iou: float = 0.5,
        extra_classes: Sequence[str] = EXTRA_CLASSES,
    ) -> None:
        self.base = base
        self.views = tuple(v if isinstance(v, View) else View.parse(v) for v in views)
        if not self.views:
            msg = "a multi-view detector needs at least one view"
            raise ValueError(msg)
        self.groups = tuple(tuple(g) for g in groups)
        self.iou = iou
        self.class_names = tuple(base.class_names)
        self._extra_ids = np.asarray(
            [i for i, name in enumerate(self.class_names) if name in set(extra_classes)], dtype=np.int32)
        # e.g. nanodet-coco@1/stretch+square+square@2: what detections.v1 carries, so within MODEL_ID_PATTERN
        self.model_id = base.model_id if self.views == (View("stretch"),) else (
            f"{base.model_id}/{'+'.join(str(v) for v in self.views)}")

    @property
    def score(self) -> float:
        return float(getattr(self.base, "score", 0.0))

    @score.setter
    def score(self, value: float) -> None:
        self.base.score = value  # type: ignore[attr-defined]

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        rendered = [(i, view.render(image)) for i, image in enumerate(images) for view in self.views]
        found = self.base.detect_batch([r[0] for _, r in rendered])
        per_image: list[list[Detections]] = [[] for _ in images]
        for n, ((i, (_, x, y)), dets) in enumerate(zip(rendered, found, strict=True)):
            if n % len(self.views) and len(dets):  # views after the first add vehicles only
                dets = dets[np.isin(dets.class_id, self._extra_ids)]
            if len(dets):
                height, width = images[i].shape[:2]
                shift = np.asarray([x, y, x, y], dtype=np.float32)
                dets = dets.replace(xyxy=dets.xyxy - shift).clipped(width, height)
            per_image[i].append(dets)
        shape_true = [view.kind == "square" for view in self.views]
        return [fuse(parts, self.class_names, self.groups, self.iou, self.model_id, shape_true)
                for parts in per_image]
