"""The one columnar container for objects found in a frame.

``Detections`` holds parallel numpy columns — ``xyxy`` (N×4 float32, pixel
coordinates), ``confidence`` (N float32), ``class_id`` (N int32) and
``tracker_id`` (N int64, ``-1`` where untracked) — plus ``data``, a dict of
extra per-object columns (landmarks, keypoints, embeddings, text …) whose
first dimension is N.  It is validated at construction and never mutated:
every operation returns a new container, so a stage can hand its output to
several consumers safely.

``source`` names the model that produced the rows (``"nanodet-coco@1"``) and
``parent_index`` links child objects to rows of a parent container (plates to
the vehicles they were found in, faces to persons), as in Savant's object meta.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _freeze(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Detections:
    """Immutable, validated columns of N detections. See the module docstring."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None: all untracked (-1)
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        tracker = self.tracker_id
        tracker_id = (
            np.full(n, -1, dtype=np.int64) if tracker is None else np.asarray(tracker, dtype=np.int64).reshape(-1)
        )
        for name, column in (("confidence", confidence), ("class_id", class_id), ("tracker_id", tracker_id)):
            if len(column) != n:
                msg = f"column {name!r} has {len(column)} rows, xyxy has {n}"
                raise ValueError(msg)
        if n and not np.all(np.isfinite(xyxy)):
            msg = "xyxy contains NaN or infinite coordinates"
            raise ValueError(msg)
        if n and np.any(xyxy[:, 2:] < xyxy[:, :2]):
            msg = "xyxy rows must satisfy x1 <= x2 and y1 <= y2"
            raise ValueError(msg)
        data: dict[str, np.ndarray] = {}
        for key, value in self.data.items():
            column = np.asarray(value)
            if column.ndim == 0 or len(column) != n:
                msg = f"data column {key!r} must have {n} rows, has shape {column.shape}"
                raise ValueError(msg)
            data[key] = _freeze(column)
        object.__setattr__(self, "xyxy", _freeze(xyxy))
        object.__setattr__(self, "confidence", _freeze(confidence))
        object.__setattr__(self, "class_id", _freeze(class_id))
        object.__setattr__(self, "tracker_id", _freeze(tracker_id))
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, source: str = "", class_names: Sequence[str] = ()) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            source=source,
            class_names=tuple(class_names),
        )

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate containers; data columns must be present in all non-empty parts."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        keys = set(parts[0].data)
        for p in parts[1:]:
            if set(p.data) != keys:
                msg = f"cannot merge detections with different data columns: {sorted(keys)} vs {sorted(p.data)}"
                raise ValueError(msg)
        sources = {p.source for p in parts}
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=np.concatenate([p.tracker_id for p in parts]),
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
            source=sources.pop() if len(sources) == 1 else "+".join(sorted(sources)),
            class_names=parts[0].class_names,
        )

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select rows by boolean mask, integer array or slice; always returns a container."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
            source=self.source,
            class_names=self.class_names,
        )

    def __iter__(self) -> Iterator[Detections]:
        for i in range(len(self)):
            yield self[i]

    def replace(self, **changes: Any) -> Detections:
        """Return a copy with some columns replaced (the container itself never changes)."""
        fields: dict[str, Any] = {
            "xyxy": self.xyxy,
            "confidence": self.confidence,
            "class_id": self.class_id,
            "tracker_id": self.tracker_id,
            "data": self.data,
            "source": self.source,
            "class_names": self.class_names,
        }
        fields.update(changes)
        return Detections(**fields)

    def with_data(self, **columns: np.ndarray) -> Detections:
        return self.replace(data={**self.data, **columns})

    @property
    def area(self) -> np.ndarray:
        w = self.xyxy[:, 2] - self.xyxy[:, 0]
        h = self.xyxy[:, 3] - self.xyxy[:, 1]
        return w * h

    def class_name(self, i: int) -> str:
        cid = int(self.class_id[i])
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)

    def scaled(self, sx: float, sy: float) -> Detections:
        """Boxes (and 2-D point columns named ``*landmarks``/``*keypoints``) mapped by a scale."""
        scale = np.array([sx, sy, sx, sy], dtype=np.float32)
        data = dict(self.data)
        for key, value in self.data.items():
            if key.endswith(("landmarks", "keypoints")) and value.shape[-1] == 2:
                data[key] = value * np.array([sx, sy], dtype=value.dtype)
        return self.replace(xyxy=self.xyxy * scale, data=data)

    def clipped(self, width: int, height: int) -> Detections:
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        return self.replace(xyxy=xyxy)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU between two sets of xyxy boxes, shape (len(a), len(b))."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
