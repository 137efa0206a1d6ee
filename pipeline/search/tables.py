"""Plate queries over the Delta tables: planned from the log, pruned, streamed, top-k in DuckDB.

Used by :class:`pipeline.search.service.SearchService` when ``index.catalog_format`` is ``delta``
(``docs/design/catalog.md``). A query:

1. picks the files from the table's log (no listing): the dates of [start, end), the plate's bucket for
   an exact plate, and — from each file's min/max of ``text`` — only files whose range can hold the plate
   or the wildcard's literal prefix;
2. hands those files as one PyArrow dataset to DuckDB, which streams them with projection and filter
   pushdown (row groups whose statistics exclude the plate are not read) under ``SET memory_limit``;
3. keeps the highest revision per ``ikey`` among the matching rows and returns the top ``limit`` by the
   query's order (DuckDB's top-N, nothing else is materialised).

Nothing is held in memory between queries but the tables' logs. Known gap: a superseded plate revision
whose *text* differs from the latest one can still match until compaction removes it (the latest row
of that ``ikey`` does not match the query, so it is not among the rows compared).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow.dataset as pads

from pipeline.catalog.format import PLATE_KIND
from pipeline.catalog.table import FileEntry, TableCatalog, bucket_of

log = logging.getLogger(__name__)

_LIKE_SPECIAL = "%_\\"


def window_dates(start: datetime | None, end: datetime | None, known: list[str]) -> list[str]:
    """The UTC dates [start, end) touches, among ``known`` (all of them when unbounded)."""
    if start is None and end is None:
        return known
    lo = start.astimezone(UTC).date().isoformat() if start is not None else None
    hi = (end.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat() if end is not None else None
    return [d for d in known if (lo is None or d >= lo) and (hi is None or d <= hi)]


def like_prefix(pattern: str) -> str:
    """The literal text before the first wildcard of a LIKE pattern (escape ``\\``)."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if ch in "%_":
            break
        out.append(ch)
        i += 1
    return "".join(out)


def may_hold(entry: FileEntry, low: str, high: str | None) -> bool:
    """Whether the file's text range can overlap [low, high] (high None: everything starting with low)."""
    if entry.text_min is None or entry.text_max is None:
        return True
    if high is None:
        return entry.text_max >= low and entry.text_min[: len(low)] <= low
    return entry.text_max >= low and entry.text_min <= high


class TablePlates:
    """Plate search over the ``plates`` table; thread-safe (one DuckDB cursor per query)."""

    def __init__(self, tables: TableCatalog) -> None:
        self.tables = tables
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute(f"SET memory_limit = '{int(tables.settings.query_memory_mb)}MB'")
        self.lock = threading.Lock()
        self.last_files = 0
        self.last_bytes_planned = 0

    def refresh(self) -> None:
        self.tables.open(PLATE_KIND.name, fresh=True)

    def plan(self, *, start: datetime | None, end: datetime | None, exact: str | None = None,
             prefix: str = "") -> list[FileEntry]:
        """The files a query must read (see the module docstring)."""
        files = self.tables.files(PLATE_KIND.name, fresh=False)
        dates = set(window_dates(start, end, sorted({f.date for f in files})))
        chosen = [f for f in files if f.date in dates]
        if exact is not None:
            bucket = bucket_of(exact, self.tables.settings.table_buckets)
            chosen = [f for f in chosen if f.bucket == bucket and may_hold(f, exact, exact)]
        elif prefix:
            chosen = [f for f in chosen if may_hold(f, prefix, None)]
        return chosen

    def query(self, files: list[FileEntry], select: str, where: str, order: str, params: list[Any],
              limit: int) -> list[dict[str, Any]]:
        """Rows of ``SELECT {select} FROM plates WHERE {where}`` over ``files``: latest revision per
        ``ikey`` among the matches, ordered, at most ``limit``."""
        self.last_files = len(files)
        self.last_bytes_planned = sum(f.size for f in files)
        if not files:
            return []
        paths = [self.tables.fs_path(PLATE_KIND.name, f.path) for f in files]
        dataset = pads.dataset(paths, schema=PLATE_KIND.schema, format="parquet", filesystem=self.tables.fs)
        cur = self.db.cursor()
        try:
            cur.register("plates_scan", dataset)
            sql = (
                f"SELECT {select} FROM (SELECT * FROM plates_scan WHERE {where} "
                f"QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {PLATE_KIND.latest_first}) = 1) "
                f"ORDER BY {order}, read_id LIMIT ?"
            )
            cur.execute(sql, [*params, limit])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def close(self) -> None:
        self.db.close()
