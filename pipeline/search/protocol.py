"""The query layer as its callers see it: :class:`Search`, the calls the API makes.

:class:`~pipeline.search.service.SearchService` implements it over the Parquet catalog and the FAISS
shards; the API wraps it (an empty camera scope answers nothing) and tests stand in for it with lists.
The semantics of each call (ordering, limits, scope) are in the service's docstrings.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

import numpy as np

from pipeline.search.hits import (
    AlertHit,
    CameraState,
    FaceHit,
    PlateHit,
    PlateMode,
    Sighting,
    SightingKind,
    TrackHit,
)


class Search(Protocol):
    """Structured and vector search over the catalog. ``cameras``: None = every camera, empty = none."""

    def refresh(self) -> None: ...

    def plates(self, query: str, *, mode: PlateMode = ..., max_edits: int = ...,
               cameras: Collection[str] | None = ..., start: datetime | None = ..., end: datetime | None = ...,
               limit: int = ..., lookalikes: bool = ...) -> list[PlateHit]: ...

    def plate_reads(self, *, cameras: Collection[str] | None = ..., start: datetime | None = ...,
                    end: datetime | None = ..., limit: int = ...) -> list[PlateHit]: ...

    def vehicles(self, *, vehicle_type: str | None = ..., colour: str | None = ...,
                 cameras: Collection[str] | None = ..., start: datetime | None = ..., end: datetime | None = ...,
                 limit: int = ...) -> list[TrackHit]: ...

    def persons(self, *, upper: str | None = ..., lower: str | None = ..., cameras: Collection[str] | None = ...,
                start: datetime | None = ..., end: datetime | None = ..., limit: int = ...) -> list[TrackHit]: ...

    def tracks(self, *, cameras: Collection[str] | None = ..., start: datetime | None = ...,
               end: datetime | None = ..., limit: int = ...) -> list[TrackHit]: ...

    def faces(self, embedding: np.ndarray, *, model_id: str, k: int = ..., threshold: float | None = ...,
              cameras: Collection[str] | None = ..., start: datetime | None = ...,
              end: datetime | None = ...) -> list[FaceHit]: ...

    def plate_trajectory(self, plate: str, *, cameras: Collection[str] | None = ..., start: datetime | None = ...,
                         end: datetime | None = ...) -> list[Sighting]: ...

    def face_trajectory(self, embedding: np.ndarray, *, model_id: str, threshold: float,
                        cameras: Collection[str] | None = ..., start: datetime | None = ...,
                        end: datetime | None = ...) -> list[Sighting]: ...

    def sighting(self, kind: SightingKind, sighting_id: str, *,
                 cameras: Collection[str] | None = ...) -> Sighting | None: ...

    def alerts(self, *, cameras: Collection[str] | None = ..., start: datetime | None = ...,
               end: datetime | None = ..., alert_type: str | None = ..., limit: int = ...) -> list[AlertHit]: ...

    def camera_status(self, *, cameras: Collection[str] | None = ...) -> list[CameraState]: ...

    def face_embeddings(self, face_ids: Collection[str], *,
                        cameras: Collection[str] | None = ...) -> dict[str, np.ndarray]: ...
