"""The query layer: plate, vehicle, face, trajectory, alert and camera-status search over the catalog.

:class:`SearchService` is what the REST API calls. It reads the Parquet catalog and the FAISS face
shards the indexer (``workers.index``) writes to the object store, through a local cache folder
(``index.cache_dir``, segments kept by etag), and answers with the dataclasses of
:mod:`workers.search.hits`.

Camera scope: every method takes ``cameras``. ``None`` means every camera; otherwise nothing from a
camera outside the collection is ever returned — not as a hit, not inside a trajectory, not
through a sighting's detail. An empty collection returns nothing.

Times: ``start`` and ``end`` are timezone-aware datetimes (naive ones are rejected with
:class:`QueryError`); ``start`` is inclusive, ``end`` exclusive. Every returned time is UTC.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import numpy as np

from workers.search.hits import AlertHit, CameraState, FaceHit, PlateHit, QueryError, Sighting, TrackHit

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

__all__ = [
    "AlertHit",
    "CameraState",
    "FaceHit",
    "PlateHit",
    "QueryError",
    "SearchService",
    "Sighting",
    "TrackHit",
]


class SearchService:
    """Structured search with DuckDB over the Parquet catalog, vector search with FAISS shards."""

    def __init__(self, store: ObjectStore, config: TubelineConfig) -> None:
        self.store = store
        self.config = config

    def refresh(self) -> None:
        """Pick up newly flushed Parquet segments and FAISS snapshots (and forget deleted ones)."""
        raise NotImplementedError

    def plates(
        self,
        query: str,
        *,
        mode: Literal["exact", "wildcard", "fuzzy"] = "exact",
        max_edits: int = 1,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[PlateHit]:
        """Plate reads whose text matches ``query``; newest first (fuzzy: fewest edits first).

        ``wildcard``: ``*`` matches any run of characters, ``?`` exactly one (``川A*58?``).
        ``fuzzy``: Levenshtein distance at most ``max_edits`` (0-3).
        """
        raise NotImplementedError

    def vehicles(
        self,
        *,
        vehicle_type: str | None = None,
        colour: str | None = None,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[TrackHit]:
        """Vehicle tracks overlapping [start, end) with the given type and colour; newest first."""
        raise NotImplementedError

    def faces(
        self,
        embedding: np.ndarray,
        *,
        model_id: str,
        k: int = 20,
        threshold: float | None = None,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[FaceHit]:
        """The ``k`` faces most similar to ``embedding`` (same model), exactly re-ranked; best first."""
        raise NotImplementedError

    def plate_trajectory(
        self,
        plate: str,
        *,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Sighting]:
        """Every read of exactly this plate, in time order, with camera positions."""
        raise NotImplementedError

    def face_trajectory(
        self,
        embedding: np.ndarray,
        *,
        model_id: str,
        threshold: float,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Sighting]:
        """Person tracks with a face at least ``threshold`` similar, one sighting per track, in time order."""
        raise NotImplementedError

    def sighting(
        self,
        kind: Literal["plate", "track", "face"],
        sighting_id: str,
        *,
        cameras: Collection[str] | None = None,
    ) -> Sighting | None:
        """One sighting by ID (``read_id``, ``{track_id}/{segment}`` or ``track_id``, ``face_id``); None if
        unknown or outside ``cameras``."""
        raise NotImplementedError

    def alerts(
        self,
        *,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        alert_type: str | None = None,
        limit: int = 100,
    ) -> list[AlertHit]:
        """Alerts in [start, end), newest first."""
        raise NotImplementedError

    def camera_status(self, *, cameras: Collection[str] | None = None) -> list[CameraState]:
        """Every camera (registry and any camera that reported status), with its latest state; by ID."""
        raise NotImplementedError
