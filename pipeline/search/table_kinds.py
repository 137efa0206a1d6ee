"""Tracks, trajectories, alerts and camera status over the Delta tables: pruned, streamed, top-k in DuckDB.

With ``index.catalog_format: delta`` :class:`pipeline.search.service.SearchService` answers its track, vehicle,
person, trajectory-span, alert, camera-status and plate-timeline queries here (plate text search is
:class:`pipeline.search.tables.TablePlates`). One helper, :class:`TableScan`, serves every kind:

1. :meth:`TableScan.plan` picks the files from the table's log (no listing): the UTC dates the time window
   touches and, for every kind but plates, the ``bucket`` partitions of the cameras in scope (a kind's
   bucket is CRC-32 of ``camera_id``; plates are bucketed by text, so a camera scope cannot prune them).
   Tracks are partitioned by the date they *started*, and a track overlapping [start, end) may have started
   up to ``detect.max_track_s`` (the longest segment the detect worker writes) before ``start``: their
   window is widened by that much;
2. :meth:`TableScan.rows` hands the chosen files as one PyArrow dataset to DuckDB, which streams them with
   projection and filter pushdown under ``SET memory_limit`` (``index.query_memory_mb``) and runs the same
   SQL as the Parquet path — one row per ``ikey`` (``QUALIFY``) and ``ORDER BY … LIMIT k`` (top-k), so
   nothing but the answer is materialised.

Nothing is held between queries but the tables' logs (refreshed by :meth:`TableScan.refresh`). Costs that
grow with history rather than with the window (measured nowhere yet, see ``docs/design/catalog.md``): a query
without a time window reads every date of its buckets — a track by ID (a sighting), the camera status (the
latest per camera), a plate read by ID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow.dataset as pads

from pipeline.catalog.format import KIND_BY_NAME, PLATE_KIND
from pipeline.catalog.table import FileEntry, TableCatalog, TableMissing, bucket_of
from pipeline.search.tables import window_dates

log = logging.getLogger(__name__)


class TableScan:
    """Pruned scans of the catalog's Delta tables; thread-safe (one DuckDB cursor per query)."""

    def __init__(self, tables: TableCatalog, db: duckdb.DuckDBPyConnection | None = None) -> None:
        """``db``: a DuckDB connection to share (the plate queries'), so that one ``memory_limit`` bounds every
        table scan of the process; otherwise one of its own with that limit."""
        self.tables = tables
        self._owns_db = db is None
        self.db = db if db is not None else duckdb.connect(":memory:")
        if self._owns_db:
            self.db.execute("SET TimeZone = 'UTC'")
            self.db.execute(f"SET memory_limit = '{int(tables.settings.query_memory_mb)}MB'")
        self.lock = threading.Lock()
        self.last_files: dict[str, int] = {}
        """Files the last query read, per kind (what pruning left)."""
        self.last_bytes_planned = 0

    def refresh(self, kinds: Iterable[str]) -> None:
        """Bring the kinds' logs to their latest version (a table not written yet stays absent)."""
        for kind_name in kinds:
            try:
                self.tables.open(kind_name, fresh=True)
            except TableMissing:
                continue

    def plan(self, kind_name: str, *, start: datetime | None, end: datetime | None,
             cameras: Sequence[str] | None, lookback: timedelta = timedelta(0)) -> list[FileEntry]:
        """The files of [start - lookback, end) and, but for plates, of the cameras' buckets (None: every
        camera)."""
        files = self.tables.files(kind_name, fresh=False)
        low = start - lookback if start is not None else None
        dates = set(window_dates(low, end, sorted({f.date for f in files})))
        chosen = [f for f in files if f.date in dates]
        if cameras is not None and kind_name != PLATE_KIND.name:
            buckets = {bucket_of(c, self.tables.settings.table_buckets) for c in cameras}
            chosen = [f for f in chosen if f.bucket in buckets]
        return chosen

    def rows(self, scans: Mapping[str, tuple[str, list[FileEntry]]], sql: str,
             params: list[Any]) -> list[dict[str, Any]]:
        """Rows of ``sql``, in which each name of ``scans`` is a table: (kind, its files). A scan with no files
        is an empty table of the kind's columns."""
        cur = self.db.cursor()
        self.last_bytes_planned = 0
        try:
            for name, (kind_name, files) in scans.items():
                kind = KIND_BY_NAME[kind_name]
                self.last_files[kind_name] = len(files)
                self.last_bytes_planned += sum(f.size for f in files)
                if files:
                    paths = [self.tables.fs_path(kind_name, f.path) for f in files]
                    cur.register(name, pads.dataset(paths, schema=kind.schema, format="parquet",
                                                    filesystem=self.tables.fs))
                else:
                    cur.register(name, kind.schema.empty_table())
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def close(self) -> None:
        if self._owns_db:
            self.db.close()


def track_dates(rows: Iterable[Mapping[str, Any]]) -> tuple[datetime, datetime] | None:
    """[first start, last end + 1 µs) of the tracks: the window their plate reads were captured in."""
    spans = [(r["started_at"], r["ended_at"]) for r in rows]
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans) + timedelta(microseconds=1)
