"""Face search in the query layer: FAISS shards per model and window, kept in step with the catalog.

A shard is opened from its snapshot the first time a query needs its window and is checked against
the catalog on every use: face segments written since the snapshot are added in memory, and a
shard whose snapshot is missing, refused (its size or SHA-256 differs from its manifest) or names a
segment the catalog no longer has is rebuilt in memory from the Parquet segments. The query layer
never writes snapshots: only the indexer may write ``index/`` (the API's store identity cannot), and it
snapshots the shard again the next time it adds to the window. Camera and time filters are applied inside the FAISS search
(an ID selector), then the candidates are re-ranked by exact cosine similarity.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import faiss
import numpy as np

from pipeline.catalog.shards import Shard, ShardBuilder, ShardError, window_bounds
from pipeline.config.index import IndexConfig
from pipeline.search.catalog import CatalogCache
from pipeline.search.hits import QueryError
from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceCandidate:
    """One scored face: its row in a shard's metadata."""

    row: dict
    score: float


def unit_query(embedding: np.ndarray) -> np.ndarray:
    """The query as a float32 unit vector; QueryError when it is not a finite, non-zero 1-D vector."""
    q = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(q))
    if q.ndim != 1 or len(q) == 0 or not np.isfinite(norm) or norm == 0.0:
        msg = "the face embedding must be a finite, non-zero vector"
        raise QueryError(msg)
    return q / norm


class FaceIndex:
    """The shards the query layer has opened, keyed by (model_id, window)."""

    def __init__(self, store: ObjectStore, settings: IndexConfig, catalog: CatalogCache) -> None:
        self.settings = settings
        self.catalog = catalog
        if settings.search_threads:  # process-wide in FAISS; the query layer owns its process's FAISS use
            faiss.omp_set_num_threads(settings.search_threads)
        self.builder = ShardBuilder(store, settings, catalog.fetch)
        self.shards: dict[tuple[str, str], Shard] = {}
        self.rebuilt = 0
        self._windows: dict[str, list[str]] = {}
        self._windows_version = -1

    def windows(self, model_id: str, start: datetime | None, end: datetime | None) -> list[str]:
        """Windows holding faces of the model that overlap [start, end), oldest first."""
        with self.catalog.lock:
            if self._windows_version != self.catalog.version:
                fmt = "%Y-%m-%d" if self.settings.face_window == "day" else "%Y-%m-%dT%H"
                cur = self.catalog.cursor()
                try:
                    rows = cur.execute("SELECT DISTINCT model_id, strftime(captured_at, ?) FROM faces", [fmt]).fetchall()
                finally:
                    cur.close()
                by_model: dict[str, list[str]] = {}
                for model, window in rows:
                    by_model.setdefault(model, []).append(window)
                self._windows = {m: sorted(w) for m, w in by_model.items()}
                self._windows_version = self.catalog.version
                for key in [k for k in self.shards if k[1] not in self._windows.get(k[0], ())]:
                    del self.shards[key]  # the window's faces left the catalog (retention): free the shard
            windows = self._windows.get(model_id, [])
        out = []
        for window in windows:
            lo, hi = window_bounds(window)
            if (end is None or lo < end) and (start is None or hi > start):
                out.append(window)
        return out

    def shard(self, model_id: str, window: str) -> Shard | None:
        """The shard, in step with the loaded catalog; None when the window has no face of the model."""
        with self.catalog.lock:
            date = window_bounds(window)[0].strftime("%Y-%m-%d")
            segments = self.catalog.segments("faces", [date])
            shard = self.shards.get((model_id, window))
            if shard is not None and any(segments.get(k) != e for k, e in shard.covered().items()):
                shard = None  # a covered segment was compacted or deleted: open again
            try:
                if shard is None:
                    shard, rebuilt = self.builder.open(model_id, window, segments)
                    self.rebuilt += int(rebuilt)
                else:
                    self.builder.catch_up(shard, segments)
            except ShardError as exc:
                log.info("face shard %s/%s: %s", model_id, window, exc)
                return None
            self.shards[(model_id, window)] = shard
            return shard

    def search(
        self,
        query: np.ndarray,
        *,
        model_id: str,
        k: int,
        threshold: float | None,
        cameras: Collection[str] | None,
        start: datetime | None,
        end: datetime | None,
    ) -> list[FaceCandidate]:
        """The best ``k`` faces over every window in range, exact scores, best first, one per face ID."""
        q = unit_query(query)
        with self.catalog.lock:  # FAISS shards are not safe to search while another thread adds to them
            found = self._search(q, model_id, k, threshold, cameras, start, end)
        found.sort(key=lambda c: (-c.score, c.row["face_id"]))
        seen: set[str] = set()
        unique = []
        for cand in found:
            if cand.row["face_id"] not in seen:
                seen.add(cand.row["face_id"])
                unique.append(cand)
        return unique[:k]

    def _search(
        self, q: np.ndarray, model_id: str, k: int, threshold: float | None,
        cameras: Collection[str] | None, start: datetime | None, end: datetime | None,
    ) -> list[FaceCandidate]:
        found: list[FaceCandidate] = []
        for window in self.windows(model_id, start, end):
            shard = self.shard(model_id, window)
            if shard is None:
                continue
            if shard.manifest.dimension != len(q):
                msg = f"model {model_id} has {shard.manifest.dimension}-dimensional embeddings, the query has {len(q)}"
                raise QueryError(msg)
            mask = shard.filter_mask(cameras, start, end)
            ids, scores = shard.search(q, k, self.settings, mask)
            if threshold is not None:
                keep = scores >= threshold
                ids, scores = ids[keep], scores[keep]
            rows = shard.meta.take(ids).to_pylist() if len(ids) else []
            found += [FaceCandidate(row, float(s)) for row, s in zip(rows, scores, strict=True)]
        return found
