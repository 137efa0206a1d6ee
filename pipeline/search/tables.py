"""Plate queries over the Delta tables: planned from the log, narrowed by the plate index, top-k in DuckDB.

Used by :class:`pipeline.search.service.SearchService` when ``index.catalog_format`` is ``delta``
(``docs/design/catalog.md``, Queries). A query goes through the window's dates newest first; per date:

1. the files come from the table's log (no listing); the plate index (:mod:`pipeline.catalog.plate_index`)
   says which of them it covers;
2. covered files: the query's match clause (the same SQL as the final filter) runs over the distinct plates
   (the vocabulary, in memory), the matching plates are looked up in the day index, and only the row
   groups that hold them are read (footers cached: data files never change);
3. files no usable index covers (fresh appends, a day compacted after the index was built): scanned as a
   PyArrow dataset through DuckDB with filter pushdown, pruned by the plate's bucket (exact) and by each
   file's ``text`` min/max (exact or a literal prefix), as before the index existed;
4. newest-first queries stop after the first dates that already hold ``limit`` hits (days are disjoint in
   time, so an older day cannot enter the top ``limit``).

The rows gathered pass through one DuckDB statement: the full WHERE (match, camera scope, time), the
highest revision per ``ikey``, the query's order and ``LIMIT``. The index only decides which rows are
*read*; it cannot add a hit, and a row it does not cover is scanned, so it cannot lose one either.

Memory between queries: the tables' logs, the vocabulary (≈ 12 bytes per distinct plate) and a bounded
cache of Parquet footers. Known gap: a superseded plate revision
whose *text* differs from the latest one can still match until compaction removes it (the latest row
of that ``ikey`` does not match the query, so it is not among the rows compared).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from pipeline.catalog.format import PLATE_KIND
from pipeline.catalog.plate_index import DayIndex, FooterCache, PlateIndex
from pipeline.catalog.table import RANGE_BUCKET, FileEntry, TableCatalog, bucket_of

log = logging.getLogger(__name__)

_LIKE_SPECIAL = "%_\\"
MAX_CANDIDATES = 20_000
"""Most distinct plates a query looks up through the index; a broader pattern (``川A*``) scans instead."""


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


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (its last character's successor; None
    when there is none: every character the largest code point)."""
    while prefix and ord(prefix[-1]) == 0x10FFFF:
        prefix = prefix[:-1]
    if not prefix:
        return None
    after = ord(prefix[-1]) + 1
    return prefix[:-1] + chr(0xE000 if 0xD800 <= after <= 0xDFFF else after)  # no surrogate: UTF-8 cannot hold one


def may_hold(entry: FileEntry, low: str, high: str | None) -> bool:
    """Whether the file's text range can overlap [low, high] (high None: everything starting with low)."""
    if entry.text_min is None or entry.text_max is None:
        return True
    if high is None:
        return entry.text_max >= low and entry.text_min[: len(low)] <= low
    return entry.text_max >= low and entry.text_min <= high


@dataclass
class QueryStats:
    """What the last query did (for the benchmark and tests): files and row groups read, dates visited."""

    files: int = 0
    row_groups: int = 0
    dates: int = 0
    indexed_dates: int = 0
    scanned_files: int = 0
    candidates: int = 0


@dataclass(frozen=True)
class PlateQuery:
    """One plate query, as SQL pieces whose values all travel as parameters.

    ``match`` filters on ``text`` alone (it is also run over the vocabulary); ``where`` is the whole
    filter (match, scope, time) with ``where_params``; ``select``/``select_params`` the output columns;
    ``order`` the ORDER BY; ``exact``/``prefix`` what file statistics can prune by; ``starts``/``ends``, when
    either is set, a necessary condition of ``match``: every matching text starts with one of ``starts`` or
    ends with one of ``ends`` (the vocabulary is narrowed by binary search before ``match`` runs on it)."""

    match: str
    match_params: list[Any]
    where: str
    where_params: list[Any]
    select: str
    select_params: list[Any]
    order: str
    limit: int
    start: datetime | None = None
    end: datetime | None = None
    exact: str | None = None
    prefix: str = ""
    starts: tuple[str, ...] = ()
    ends: tuple[str, ...] = ()

    @property
    def newest_first(self) -> bool:
        return self.order.strip().lower() == "captured_at desc"

    def columns(self) -> list[str]:
        """The table's columns the statements mention (read only those)."""
        text = " ".join([self.where, self.select, self.order, PLATE_KIND.latest_first, "ikey read_id text"])
        words = set(re.findall(r"[a-z_]+", text))
        return [n for n in PLATE_KIND.schema.names if n in words]


class TablePlates:
    """Plate search over the ``plates`` table; thread-safe (one DuckDB cursor per query)."""

    def __init__(self, tables: TableCatalog, *, use_index: bool = True) -> None:
        self.tables = tables
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute(f"SET memory_limit = '{int(tables.settings.query_memory_mb)}MB'")
        self.db.execute("SET threads = 2")
        self.lock = threading.Lock()
        self.footers = FooterCache(tables.fs)
        self.index = PlateIndex(tables, footers=self.footers) if use_index else None
        self.last_files = 0
        self.last_bytes_planned = 0
        self.last = QueryStats()
        self._files_cache: tuple[int, list[FileEntry]] | None = None

    def refresh(self) -> None:
        self.tables.open(PLATE_KIND.name, fresh=True)
        if self.index is not None:
            with self.lock:
                self.index.refresh()

    def plan(self, *, start: datetime | None, end: datetime | None, exact: str | None = None,
             prefix: str = "", files: list[FileEntry] | None = None) -> list[FileEntry]:
        """The files a scan without the index must read: the window's dates, then pruned by the plate's
        bucket and each file's text range (compacted plate files are range-bucketed: ``RANGE_BUCKET``)."""
        if files is None:
            files = self.tables.files(PLATE_KIND.name, fresh=False)
            dates = set(window_dates(start, end, sorted({f.date for f in files})))
            files = [f for f in files if f.date in dates]
        chosen = files
        if exact is not None:
            bucket = bucket_of(exact, self.tables.settings.table_buckets)
            chosen = [f for f in chosen if f.bucket in (bucket, RANGE_BUCKET) and may_hold(f, exact, exact)]
        elif prefix:
            chosen = [f for f in chosen if may_hold(f, prefix, None)]
        return chosen

    # -- the query ---------------------------------------------------------------------------------------
    def search(self, q: PlateQuery) -> list[dict[str, Any]]:
        """Rows of ``SELECT {select} ... WHERE {where}``: latest revision per ``ikey`` among the matches,
        ordered, at most ``limit`` (module docstring for how the rows are found)."""
        files = self._files()
        dates = window_dates(q.start, q.end, sorted({f.date for f in files}))
        by_date: dict[str, list[FileEntry]] = {}
        for f in files:
            by_date.setdefault(f.date, []).append(f)
        stats = QueryStats()
        cur = self.db.cursor()
        try:
            vocab_hits: pa.Array | None = None
            parts: list[pa.Table] = []
            distinct: list[int] = []  # distinct ikeys per part (a read's revisions share its date: parts never share one)
            for date in sorted(dates, reverse=True):
                stats.dates += 1
                indexes, rest = self._cover(date, by_date.get(date, []))
                if indexes:
                    if vocab_hits is None:
                        vocab_hits = self._vocab_matches(cur, q)
                    read = self._read_indexed(cur, q, indexes, vocab_hits, stats)
                    if read is None:  # too many candidate plates: scan these files instead
                        rest = by_date.get(date, [])
                    else:
                        stats.indexed_dates += 1
                        parts.append(read)
                scan = self.plan(start=q.start, end=q.end, exact=q.exact, prefix=q.prefix, files=rest)
                if scan:
                    parts.append(self._scan(cur, q, scan, stats))
                distinct += [len(pc.unique(p.column("ikey"))) for p in parts[len(distinct):]]
                if q.newest_first and self._enough(cur, q, parts, distinct):
                    break
            self.last = stats
            self.last_files = stats.files
            return self._final(cur, q, parts)
        finally:
            cur.close()

    def _files(self) -> list[FileEntry]:
        """The table's files at the version last refreshed (kept per version: the log is read once)."""
        version = self.tables.open(PLATE_KIND.name, fresh=False).version()
        cached = self._files_cache
        if cached is None or cached[0] != version:
            cached = (version, self.tables.files(PLATE_KIND.name, fresh=False))
            self._files_cache = cached
        return cached[1]

    def _enough(self, cur: duckdb.DuckDBPyConnection, q: PlateQuery, parts: list[pa.Table], distinct: list[int]) -> bool:
        """Whether the rows gathered already hold ``limit`` distinct matches (cheap bound first)."""
        if sum(distinct) < q.limit:
            return False
        cur.register("plates_found", self._concat(parts))
        try:
            found = cur.execute(f"SELECT count(DISTINCT ikey) FROM plates_found WHERE {q.where}",
                                q.where_params).fetchall()
            return int(found[0][0]) >= q.limit
        finally:
            cur.unregister("plates_found")

    @staticmethod
    def _concat(parts: list[pa.Table]) -> pa.Table:
        """One table of the parts (index reads and DuckDB scans differ in time zone spelling: cast to the kind's)."""
        schema = pa.schema([PLATE_KIND.schema.field(c) for c in parts[0].column_names])
        return pa.concat_tables([p.select(schema.names).cast(schema) for p in parts])

    def _cover(self, date: str, files: list[FileEntry]) -> tuple[list[DayIndex], list[FileEntry]]:
        if self.index is None:
            return [], files
        with self.lock:
            return self.index.cover(date, files)

    def _vocab_matches(self, cur: duckdb.DuckDBPyConnection, q: PlateQuery) -> pa.Array:
        """The distinct plates of the vocabulary that the match clause accepts (sorted)."""
        if q.exact is not None:
            return pa.array([q.exact], pa.string())
        assert self.index is not None
        if q.starts or q.ends:
            return self._match(cur, q, self.index.narrow(q.starts, q.ends))
        return self._match(cur, q, self.index.vocab.column("text"))

    @staticmethod
    def _match(cur: duckdb.DuckDBPyConnection, q: PlateQuery, texts: pa.ChunkedArray | pa.Array) -> pa.Array:
        table = pa.table({"text": texts})
        cur.register("vocab_scan", table)
        try:
            found = cur.sql(f"SELECT text FROM vocab_scan WHERE {q.match} ORDER BY text", params=q.match_params)
            return found.to_arrow_table().column("text").combine_chunks().cast(pa.string())
        finally:
            cur.unregister("vocab_scan")

    def _read_indexed(self, cur: duckdb.DuckDBPyConnection, q: PlateQuery, indexes: list[DayIndex],
                      vocab_hits: pa.Array, stats: QueryStats) -> pa.Table | None:
        """Rows of the covered files whose text is a candidate (the full WHERE comes later); None when the
        candidates are too many."""
        assert self.index is not None
        columns = q.columns()
        out: list[pa.Table] = []
        for day in indexes:
            texts = vocab_hits
            if q.exact is None and not self.index.in_vocab(day):
                lagging = self._match(cur, q, self.index.day_texts(day))
                texts = pc.unique(pa.chunked_array([vocab_hits, lagging], pa.string()).combine_chunks())
                texts = pc.take(texts, pc.array_sort_indices(texts))
            stats.candidates = max(stats.candidates, len(texts))
            if len(texts) > MAX_CANDIDATES:
                return None
            if len(texts) == 0:
                continue
            for path, groups in self.index.lookup(day, texts).items():
                pf = self.footers.open(self.tables.fs_path(PLATE_KIND.name, path))
                rows = pf.read_row_groups(groups, columns=columns, use_threads=False)
                stats.files += 1
                stats.row_groups += len(groups)
                out.append(rows.filter(pc.is_in(rows.column("text").cast(pa.string()), value_set=texts)))
        if not out:
            return pa.schema([PLATE_KIND.schema.field(c) for c in columns]).empty_table()
        return self._concat(out)

    def _scan(self, cur: duckdb.DuckDBPyConnection, q: PlateQuery, files: list[FileEntry],
              stats: QueryStats) -> pa.Table:
        """Matching rows of files without a usable index: a streamed, filter-pushed-down scan.

        Files delta-rs rewrote (a DELETE) store ``text`` as ``string_view``; Arrow has no kernel comparing it
        with a ``string`` scalar, so those are streamed to DuckDB without pushdown (rare: until the next
        compaction rewrites the day)."""
        stats.files += len(files)
        stats.scanned_files += len(files)
        paths = [self.tables.fs_path(PLATE_KIND.name, f.path) for f in files]
        plain = [p for p in paths if self.footers.open(p).schema_arrow.field("text").type == pa.string()]
        other = [p for p in paths if p not in set(plain)]
        cols = q.columns()
        out = []
        if plain:
            out.append(self._scan_source(cur, q, pads.dataset(plain, schema=PLATE_KIND.schema, format="parquet",
                                                              filesystem=self.tables.fs)))
        for path in other:
            reader = pads.dataset(path, format="parquet", filesystem=self.tables.fs).scanner(columns=cols).to_reader()
            out.append(self._scan_source(cur, q, reader))
        return self._concat(out)

    def _scan_source(self, cur: duckdb.DuckDBPyConnection, q: PlateQuery, source: Any) -> pa.Table:
        """The matches of one scanned source; for a newest-first query only its own top ``limit`` (latest revision
        per ``ikey`` first: a read's revisions share its date, so this part's answer cannot change later), which
        keeps a broad pattern (``川A*``) from materialising every match."""
        sql = f"SELECT {', '.join(q.columns())} FROM plates_scan WHERE {q.where}"
        params = list(q.where_params)
        end = prefix_end(q.prefix) if q.prefix else None
        if end is not None:  # the same condition as a range DuckDB hands to the Arrow scanner: row groups pruned
            sql += " AND text >= ? AND text < ?"
            params += [q.prefix, end]
        if q.newest_first:
            sql += (f" QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {PLATE_KIND.latest_first}) = 1"
                    " ORDER BY captured_at DESC, read_id LIMIT ?")
            params.append(q.limit)
        cur.register("plates_scan", source)
        try:
            result: pa.Table = cur.sql(sql, params=params).to_arrow_table()
            return result
        finally:
            cur.unregister("plates_scan")

    def _final(self, cur: duckdb.DuckDBPyConnection, q: PlateQuery, parts: list[pa.Table]) -> list[dict[str, Any]]:
        if not parts:
            return []
        cur.register("plates_found", self._concat(parts))
        try:
            sql = (
                f"SELECT {q.select} FROM (SELECT * FROM plates_found WHERE {q.where} "
                f"QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {PLATE_KIND.latest_first}) = 1) "
                f"ORDER BY {q.order}, read_id LIMIT ?"
            )
            cur.execute(sql, [*q.select_params, *q.where_params, q.limit])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.unregister("plates_found")

    def close(self) -> None:
        self.db.close()
