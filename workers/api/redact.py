"""Redaction on export, wired to the model zoo: CenterFace for faces, the plate detector and reader for plates.

:func:`redactor_for` gives the evidence builder a :class:`~pipeline.cases.builder.Redactor` for one package: the
plates named in the case (the texts of its saved plate reads and tracks) stay clear, so do the objects the
investigator kept in the preview (``ITEM/face:2``, or ``face:2`` for every item); everything else detected is
blurred on the copies. :func:`preview` renders one item's frame with each object's number and what will happen
to it, for the UI's include/exclude list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.cases.redaction import Box, Redaction, Tracked
from pipeline.cases.workspace import CaseItem
from workers.api.context import ApiContext

_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


def _zoo(ctx: ApiContext) -> Any:
    from models.zoo import ModelZoo

    with _LOCK:
        if "zoo" not in _MODELS:
            _MODELS["zoo"] = ModelZoo(ctx.config.models)
        return _MODELS["zoo"]


def face_detect(ctx: ApiContext) -> Any:
    detector = _zoo(ctx).face_detector()

    def detect(image: np.ndarray) -> list[Box]:
        with _LOCK:
            found = detector.detect(image)
        return [tuple(float(v) for v in box) for box in found.xyxy]  # type: ignore[misc]

    return detect


def plate_read(ctx: ApiContext) -> Any:
    recognizer = _zoo(ctx).plate_recognizer()

    def read(image: np.ndarray) -> list[tuple[Box, str]]:
        with _LOCK:
            found = recognizer.recognize(image, mode="scene")
        texts = found.data.get("text", [""] * len(found))
        return [(tuple(float(v) for v in box), str(text)) for box, text in zip(found.xyxy, texts, strict=True)]  # type: ignore[misc]

    return read


def named_plates(items: Iterable[CaseItem]) -> set[str]:
    return {i.text.upper() for i in items if i.kind in ("plate", "track") and i.text}


def _for_item(entries: Iterable[str], item_id: str) -> set[str]:
    out = set()
    for entry in entries:
        scope, _, label = entry.rpartition("/")
        if not scope or scope == item_id:
            out.add(label)
    return out


class ApiRedactor:
    """The builder's Redactor for one package."""

    def __init__(self, ctx: ApiContext, plates: set[str], *, faces: bool, blur_plates: bool, keep: list[str],
                 blur: list[str]) -> None:
        self.faces = face_detect(ctx) if faces else None
        self.plates = plate_read(ctx) if blur_plates else None
        self.named = plates
        self.keep, self.blur = keep, blur

    def redaction(self, item: CaseItem) -> Redaction:
        return Redaction(self.faces, self.plates, self.named, _for_item(self.keep, item.item_id),
                         _for_item(self.blur, item.item_id))

    def clip(self, src: Path, dst: Path, item: CaseItem) -> dict[str, Any]:
        return self.redaction(item).clip(src, dst)

    def image(self, bgr: np.ndarray, item: CaseItem) -> tuple[np.ndarray, dict[str, Any]]:
        return self.redaction(item).image(bgr)


def redactor_for(ctx: ApiContext, case: Any, items: list[CaseItem], *, faces: bool, plates: bool, keep: list[str],
                 blur: list[str]) -> ApiRedactor:
    return ApiRedactor(ctx, named_plates(ctx.workspace.items(case.number)), faces=faces, blur_plates=plates,
                       keep=keep, blur=blur)


def preview(redaction: Redaction, clip: Path, at_s: float) -> tuple[bytes, list[dict[str, Any]]]:
    """A JPEG of the clip's frame at ``at_s`` (objects outlined and numbered, blurred ones blurred) and the list
    of objects seen up to that frame with whether each is blurred."""
    chosen: tuple[np.ndarray, list[Tracked]] | None = None
    seen: dict[str, Tracked] = {}
    for _, t, image, objects in redaction.frames(clip):
        for obj in objects:
            seen.setdefault(obj.label, obj)
        chosen = (image, objects)
        if t >= at_s:
            break
    if chosen is None:
        msg = "the clip has no frame"
        raise LookupError(msg)
    image, objects = chosen
    out, _ = redaction.apply(image, objects)
    for obj in objects:
        colour = (40, 40, 230) if redaction.decide(obj) else (40, 200, 40)
        x1, y1, x2, y2 = (int(v) for v in obj.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(out, obj.label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    listed = [{"label": o.label, "text": o.text, "blurred": redaction.decide(o), "in_frame": o in objects}
              for o in sorted(seen.values(), key=lambda o: (o.label.split(":")[0], int(o.label.split(":")[1])))]
    return jpeg.tobytes(), listed
