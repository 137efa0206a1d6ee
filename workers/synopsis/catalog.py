"""Track source over the Parquet catalog the indexer writes (``workers.index``): the durable truth.

The indexer keeps every track summary (path included) and plate read as Parquet segments under
``{catalog_prefix}/{kind}/date={YYYY-MM-DD}/camera={camera}/``. :class:`CatalogTrackSource` lists the
segments of the camera for the days the window touches (and the day before, for tracks that started
earlier), reads them with pyarrow and rebuilds :class:`schemas.tracks.TrackSummary` messages.
Duplicates (redelivered messages written twice) are resolved as the query layer does: per
idempotency key the latest ingested row wins; for plates the highest revision.

The search service's in-memory DuckDB tables leave the ``path`` column in the files, which is why
this reads the segments itself instead of going through ``pipeline.search.service``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pipeline.catalog.format import parse_segment_key, partition_prefix, read_table
from pipeline.store.base import ObjectNotFound, ObjectStore
from schemas.tracks import TrackSummary

log = logging.getLogger(__name__)

_TRACK_FIELDS = (
    "track_id", "segment", "camera_id", "class_name", "class_id", "started_at", "ended_at", "frame_width",
    "frame_height", "mean_score", "best_crop_key", "colour", "colour_confidence", "vehicle_type", "closed_reason",
)


class CatalogTrackSource:
    """Tracks and plate reads of one camera and window, from the catalog's Parquet segments."""

    def __init__(self, store: ObjectStore, prefix: str = "catalog") -> None:
        self.store = store
        self.prefix = prefix
        self.segments_read = 0

    def _rows(self, kind: str, camera_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        day = (start - timedelta(days=1)).date()
        while day <= end.date():
            for info in self.store.list(partition_prefix(self.prefix, kind, camera_id, day.isoformat())):
                if parse_segment_key(info.key, self.prefix) is None:
                    continue
                try:
                    rows.extend(read_table(self.store.get(info.key)).to_pylist())
                except ObjectNotFound:
                    log.info("catalog segment %s vanished while reading (compaction?)", info.key)
                    continue
                self.segments_read += 1
            day += timedelta(days=1)
        return rows

    @staticmethod
    def _latest(rows: list[dict[str, Any]], rank: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        best: dict[str, dict[str, Any]] = {}
        for row in rows:
            known = best.get(row["ikey"])
            if known is None or tuple(row[c] for c in rank) >= tuple(known[c] for c in rank):
                best[row["ikey"]] = row
        return best

    def tracks(self, camera_id: str, start: datetime, end: datetime) -> list[TrackSummary]:
        rows = self._rows("tracks", camera_id, start, end)
        found = []
        for row in self._latest(rows, ("ingested_at", "src_partition", "src_offset")).values():
            if row["ended_at"] < start or row["started_at"] >= end:
                continue
            fields = {name: row[name] for name in _TRACK_FIELDS}
            fields["path"] = tuple(tuple(point) for point in row["path"])
            try:
                found.append(TrackSummary.model_validate(fields))
            except ValueError as exc:
                log.warning("catalog: skipping invalid track row %s: %s", row["ikey"], exc)
        return found

    def plates(self, camera_id: str, start: datetime, end: datetime) -> dict[str, str]:
        rows = self._rows("plates", camera_id, start - timedelta(days=1), end + timedelta(days=1))
        best: dict[str, dict[str, Any]] = {}
        for row in self._latest(rows, ("revision", "ingested_at", "src_partition", "src_offset")).values():
            known = best.get(row["track_id"])
            if known is None or row["revision"] >= known["revision"]:
                best[row["track_id"]] = row
        return {track_id: row["text"] for track_id, row in best.items()}
