"""The fixed output contracts every model backend honours.

Images are BGR uint8 H×W×3 numpy arrays (what OpenCV and ``pipeline.core.Frame`` hold). Every result
is a :class:`pipeline.core.Detections` in the input image's pixel coordinates with ``source`` set to the
producing model's ``id@version``; extra per-object columns live in ``data``:

========================  =====================================================================
Protocol                  ``data`` columns added
========================  =====================================================================
Detector                  (none; ``class_id`` indexes ``class_names``)
PlateDetector             ``corners`` N×4×2 float32, ordered top-left, top-right, bottom-right, bottom-left
PlateReader               ``text`` N str, ``text_confidence`` N float32, ``char_confidence`` N object
                          (float32 array per plate), ``valid`` N bool (matched a plate grammar),
                          ``pattern`` N str (the grammar that matched, ``""`` if none)
FaceDetector              ``landmarks`` N×5×2 float32, as seen in the image: eye on the image's left,
                          eye on its right, nose tip, mouth corner on the left, mouth corner on the right
FaceEmbedder              ``embedding`` N×D float32, L2-normalised
========================  =====================================================================

Swapping a model is a registry entry plus a config value; code depends on these protocols only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.core import Detections


@runtime_checkable
class Detector(Protocol):
    """Objects of known classes in a picture."""

    model_id: str
    class_names: tuple[str, ...]

    def detect(self, image: np.ndarray) -> Detections: ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


@runtime_checkable
class PlateDetector(Protocol):
    """Licence plates as boxes plus their four corners (``data["corners"]``)."""

    model_id: str

    def detect(self, image: np.ndarray) -> Detections: ...


@runtime_checkable
class PlateReader(Protocol):
    """Text of plates already located in an image (rows of a PlateDetector's output, or a whole crop)."""

    model_id: str

    def read(self, image: np.ndarray, plates: Detections) -> Detections: ...


@runtime_checkable
class FaceDetector(Protocol):
    """Faces as boxes plus five landmarks (``data["landmarks"]``)."""

    model_id: str

    def detect(self, image: np.ndarray) -> Detections: ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Identity vectors of faces. ``template`` gives the five landmark positions (chip pixels) the model
    was trained with, ``chip_size`` the aligned chip's side, ``threshold`` the calibrated cosine
    similarity at or above which two faces are the same person."""

    model_id: str
    dimension: int
    chip_size: int
    template: np.ndarray
    threshold: float

    def embed(self, image: np.ndarray, faces: Detections) -> Detections: ...

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray: ...
