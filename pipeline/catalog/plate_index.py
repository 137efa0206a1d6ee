"""The plate-text index of the ``plates`` table: which row groups of which data files hold a plate text.

Why: a 30-day wildcard such as ``*5A3?`` has no literal prefix, so file and row-group min/max statistics
cannot prune; without an index it reads the ``text`` column of every file of the window (10^8 strings at
province scale). With repeat visits a day has far fewer distinct plates than reads, and the whole table
fewer still, so the query first matches the pattern against the distinct plates (the *vocabulary*),
then reads only the row groups that hold the matching plates (``docs/design/catalog.md``, Queries).

Layout, beside the tables (``{index.table_prefix}/_index/plates/``, not under the table's own folder, so
Delta's ``vacuum`` never sees it)::

    date={D}/{token}.parquet   text (sorted), file (int32), row_group (int32): one row per distinct
                               (text, file, row group); the footer's ``tubeline.covers`` lists the data
                               files (paths relative to the table) that ``file`` indexes into
    vocab/{token}.parquet      text (sorted, distinct) of every day index named in ``tubeline.covers``;
                               backwards: the same texts reversed, sorted (for tail queries)

``token`` is a hash of what the file covers, so two builders of the same files write the same object.
Everything here is *derived data*: it can be deleted and rebuilt (:meth:`PlateIndex.build`,
:meth:`PlateIndex.build_vocab`) and a reader never trusts it beyond what it says it covers:

* a day index is used only when every file it covers is still in the table's log (after a compaction
  or a delete the old index covers removed files and is ignored); files of a date that no usable day
  index covers are scanned as without an index, so a query never misses a row because the index lags;
* the vocabulary is used for a day index only when it names that index; for a day index it does not
  name (built after the vocabulary), the pattern is matched against that index's own ``text`` column.

A day index lists row groups, not rows, so it works for unsorted files (fresh appends: a flush is a
row group or two) and for sorted, compacted ones (a plate is in one row group, rarely two) alike.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.catalog.format import PLATE_KIND
from pipeline.catalog.table import FileEntry, TableCatalog

log = logging.getLogger(__name__)

INDEX_DIR = "_index/plates"
COVERS_KEY = b"tubeline.covers"
INDEX_SCHEMA = pa.schema([pa.field("text", pa.string(), nullable=False), pa.field("file", pa.int32(), nullable=False),
                          pa.field("row_group", pa.int32(), nullable=False)])
VOCAB_SCHEMA = pa.schema([pa.field("text", pa.string(), nullable=False),
                          pa.field("backwards", pa.string(), nullable=False)])
"""``text``: the distinct plates, sorted; ``backwards``: the same plates reversed (``Y850FA川``), sorted on their
own, so that a query for a plate's tail is a binary search too (:meth:`PlateIndex.narrow`). A vocabulary
written before ``backwards`` existed is reversed on its first tail query instead."""
_INDEX_ROW_GROUP = 2048
"""Rows per row group of a day index: a lookup of one plate decodes one of these (≈ 15 KB); a day of 10^6
distinct plates has a 500-row-group footer (≈ 0.1 MB, parsed once)."""


def _token(names: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class DayIndex:
    """One day index file: its name (relative to the index folder), date and the data files it covers."""

    name: str
    date: str
    files: tuple[str, ...]


class FooterCache:
    """Parsed Parquet footers of immutable files (data files and index files never change once written),
    bounded by count; a query opens a file without reading and parsing its footer again."""

    def __init__(self, fs: pafs.FileSystem, capacity: int = 2048) -> None:
        self.fs = fs
        self.capacity = capacity
        self._footers: OrderedDict[str, pq.FileMetaData] = OrderedDict()

    def open(self, path: str) -> pq.ParquetFile:
        source = self.fs.open_input_file(path)
        meta = self._footers.get(path)
        if meta is not None:
            self._footers.move_to_end(path)
            return pq.ParquetFile(source, metadata=meta)
        pf = pq.ParquetFile(source)
        self._footers[path] = pf.metadata
        while len(self._footers) > self.capacity:
            self._footers.popitem(last=False)
        return pf

    def forget(self, path: str) -> None:
        self._footers.pop(path, None)


def _write_atomically(fs: pafs.FileSystem, path: str, table: pa.Table, row_group_size: int) -> None:
    """Write to a temporary name beside ``path`` and move it into place: a reader sees all of it or nothing."""
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as out:
        pq.write_table(table, out, row_group_size=row_group_size, compression="zstd")
    fs.move(tmp, path)


def _prefix_range(texts: pa.StringArray, prefix: str) -> pa.Array:
    """The run of the sorted ``texts`` that start with ``prefix`` (two binary searches on each text's head; Arrow
    sorts strings by UTF-8 bytes, which is code-point order: Python's string order)."""
    def head(value: pa.Scalar) -> str:
        return str(value.as_py())[: len(prefix)]

    start = bisect.bisect_left(texts, prefix, key=head)
    return texts.slice(start, bisect.bisect_right(texts, prefix, lo=start, key=head) - start)


def distinct_texts_per_row_group(pf: pq.ParquetFile) -> tuple[pa.Array, np.ndarray]:
    """(text, row group) pairs, distinct, of one data file — reading its ``text`` column only. A sorted file
    (compacted) takes the run starts; an unsorted one (an append) a hash aggregation."""
    meta = pf.metadata
    texts = pf.read(columns=["text"], use_threads=False).column(0).combine_chunks().cast(pa.string())
    groups = np.repeat(np.arange(meta.num_row_groups, dtype=np.int32),
                       [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    n = len(texts)
    if n > 1 and pc.all(pc.less_equal(texts[:-1], texts[1:])).as_py():
        change = pc.not_equal(texts[1:], texts[:-1]).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, change | (groups[1:] != groups[:-1])])
        return texts.take(pa.array(starts)), groups[starts]
    pairs = pa.table({"text": texts, "row_group": groups}).group_by(["text", "row_group"], use_threads=False)
    distinct = pairs.aggregate([])
    return distinct.column("text").combine_chunks(), distinct.column("row_group").to_numpy()


def compact_and_index(tables: TableCatalog, kind_name: str, dates: Iterable[str]) -> dict[str, int]:
    """``TableCatalog.compact`` and, for plates, the compacted days' indexes and the vocabulary merge: what a
    compaction job calls (the index is derived data of the compacted files, written right after them)."""
    days = sorted(set(dates))
    stats = tables.compact(kind_name, days)
    if kind_name == PLATE_KIND.name and stats["files_after"]:
        index = PlateIndex(tables)
        for date in days:
            index.build(date)
        index.build_vocab()
    return stats


class PlateIndex:
    """Builds and reads the plate index of one catalog's ``plates`` table (module docstring)."""

    def __init__(self, tables: TableCatalog, *, footers: FooterCache | None = None) -> None:
        self.tables = tables
        self.fs = tables.fs
        self.footers = footers or FooterCache(tables.fs)
        self.root = tables.fs_path("_index", "plates")
        self._days: dict[str, DayIndex] = {}
        self._by_date: dict[str, list[DayIndex]] = {}
        self.vocab: pa.Table = VOCAB_SCHEMA.empty_table().select(["text"])
        self._reversed: tuple[pa.Table, pa.Array] | None = None  # (vocabulary, its reversed texts sorted)
        self.vocab_covers: frozenset[str] = frozenset()
        self._vocab_name = ""

    # -- building (at commit or compaction time) ------------------------------------------------------
    def build(self, date: str, files: Sequence[FileEntry] | None = None) -> DayIndex | None:
        """Index the given files of ``date`` (default: every file the log lists for it) in one day index."""
        entries = sorted(files if files is not None else self.tables.files(PLATE_KIND.name, [date]),
                         key=lambda f: f.path)
        if not entries:
            return None
        texts: list[pa.Array] = []
        ids: list[np.ndarray] = []
        groups: list[np.ndarray] = []
        for number, entry in enumerate(entries):
            pf = self.footers.open(self.tables.fs_path(PLATE_KIND.name, entry.path))
            text, group = distinct_texts_per_row_group(pf)
            texts.append(text)
            groups.append(group)
            ids.append(np.full(len(group), number, np.int32))
        table = pa.table({"text": pa.chunked_array(texts, pa.string()), "file": np.concatenate(ids),
                          "row_group": np.concatenate(groups)}, schema=INDEX_SCHEMA)
        table = table.sort_by([("text", "ascending"), ("file", "ascending"), ("row_group", "ascending")])
        covers = [e.path for e in entries]
        name = f"date={date}/{_token(covers)}.parquet"
        table = table.replace_schema_metadata({COVERS_KEY: json.dumps({"date": date, "files": covers}).encode()})
        _write_atomically(self.fs, f"{self.root}/{name}", table, _INDEX_ROW_GROUP)
        day = DayIndex(name, date, tuple(covers))
        self._remember(day)
        log.info("plate index %s: %d file(s), %d entries", name, len(covers), table.num_rows)
        return day

    def build_vocab(self) -> str | None:
        """Merge the distinct texts of every day index into a new vocabulary; its name (None: no day index).

        Incremental: starts from the newest vocabulary and reads only the day indexes it does not name.
        Names of indexes whose date is gone stay in the vocabulary (a superset only costs a wasted
        candidate, never a miss); a rebuild from scratch is deleting the ``vocab`` folder first."""
        self.refresh()
        names = sorted(self._days)
        if not names:
            return None
        missing = [n for n in names if n not in self.vocab_covers]
        if not missing:
            return self._vocab_name
        parts = [self.vocab.column("text").combine_chunks()]
        for name in missing:
            parts.append(pc.unique(pq.read_table(f"{self.root}/{name}", columns=["text"],
                                                 filesystem=self.fs).column(0).combine_chunks()))
        merged = pc.unique(pa.chunked_array(parts, pa.string()).combine_chunks())
        flipped = pc.utf8_reverse(merged)
        table = pa.table({"text": pc.take(merged, pc.array_sort_indices(merged)),
                          "backwards": pc.take(flipped, pc.array_sort_indices(flipped))}, schema=VOCAB_SCHEMA)
        covers = sorted(self.vocab_covers | set(missing))
        vocab_name = f"vocab/{_token(covers)}.parquet"
        table = table.replace_schema_metadata({COVERS_KEY: json.dumps({"indexes": covers}).encode()})
        _write_atomically(self.fs, f"{self.root}/{vocab_name}", table, 1 << 20)
        self._load_vocab(vocab_name, table)
        log.info("plate vocabulary %s: %d plates over %d day index(es)", vocab_name, table.num_rows, len(covers))
        return vocab_name

    def prune(self) -> list[str]:
        """Delete day indexes that cover a file the log no longer lists and vocabularies older than the newest;
        the names deleted. Readers holding a deleted name fall back to scanning (they never fail)."""
        self.refresh()
        live = {f.path for f in self.tables.files(PLATE_KIND.name)}
        removed = [d.name for d in self._days.values() if not set(d.files) <= live]
        vocabs = [i.path for i in self._listing() if "/vocab/" in i.path]
        newest = f"{self.root}/{self._vocab_name}" if self._vocab_name else None
        for path in [f"{self.root}/{n}" for n in removed] + [v for v in vocabs if v != newest]:
            self.fs.delete_file(path)
            self.footers.forget(path)
        for name in removed:
            self._forget(name)
        return removed

    # -- reading (the query layer) -----------------------------------------------------------------------
    def _listing(self) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        return [i for i in self.fs.get_file_info(selector)
                if i.type == pafs.FileType.File and i.base_name.endswith(".parquet") and not i.base_name.startswith(".")]

    def refresh(self) -> None:
        """One listing of the index folder: new day indexes (their footers) and the newest vocabulary."""
        seen: set[str] = set()
        vocabs: list[tuple[int, str]] = []
        for info in self._listing():
            name = info.path[len(self.root) + 1:]
            if name.startswith("vocab/"):
                covers = self._covers(info.path).get("indexes", [])
                vocabs.append((len(covers), name))
                continue
            seen.add(name)
            if name not in self._days:
                covers = self._covers(info.path)
                self._remember(DayIndex(name, str(covers["date"]), tuple(covers["files"])))
        for name in [n for n in self._days if n not in seen]:
            self._forget(name)
        if vocabs:
            best = max(vocabs)[1]
            if best != self._vocab_name:
                self._load_vocab(best, pq.read_table(f"{self.root}/{best}", filesystem=self.fs))

    def _covers(self, path: str) -> dict[str, Any]:
        meta = self.footers.open(path).schema_arrow.metadata or {}
        covers: dict[str, Any] = json.loads(meta.get(COVERS_KEY, b"{}"))
        return covers

    def _load_vocab(self, name: str, table: pa.Table) -> None:
        meta = table.schema.metadata or {}
        self.vocab_covers = frozenset(json.loads(meta.get(COVERS_KEY, b"{}")).get("indexes", []))
        self.vocab = table.select(["text"]).combine_chunks()
        self._vocab_name = name
        self._reversed = None
        if "backwards" in table.column_names:
            self._reversed = (self.vocab, table.column("backwards").combine_chunks())

    def narrow(self, starts: Sequence[str], ends: Sequence[str]) -> pa.Array:
        """The vocabulary's plates that start with one of ``starts`` or end with one of ``ends`` (distinct,
        unsorted): binary searches of the sorted vocabulary, and of its reversed texts for ``ends``, instead of
        a pass over millions of plates (0.1 ms against 340 ms for DuckDB's pass over 2.1·10^6 plates)."""
        table = self.vocab
        column = table.column("text")
        vocab = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        parts = [_prefix_range(vocab, p) for p in starts]
        if ends:
            cached = self._reversed
            if cached is not None and cached[0] is table:
                backwards = cached[1]
            else:
                flipped = pc.utf8_reverse(vocab)
                backwards = pc.take(flipped, pc.array_sort_indices(flipped))
                self._reversed = (table, backwards)
            parts += [pc.utf8_reverse(_prefix_range(backwards, e[::-1])) for e in ends]
        if not parts:
            return vocab
        return pc.unique(pa.chunked_array(parts, pa.string()).combine_chunks())

    def _remember(self, day: DayIndex) -> None:
        if day.name in self._days:
            return
        self._days[day.name] = day
        self._by_date.setdefault(day.date, []).append(day)

    def _forget(self, name: str) -> None:
        day = self._days.pop(name)
        self._by_date[day.date] = [d for d in self._by_date[day.date] if d.name != name]

    def cover(self, date: str, files: Sequence[FileEntry]) -> tuple[list[DayIndex], list[FileEntry]]:
        """Day indexes usable for ``date`` given the files the log lists now, and the files none covers.

        Usable: every file it covers is listed now. Greedy, largest first, each data file covered once."""
        live = {f.path for f in files}
        covered: set[str] = set()
        chosen: list[DayIndex] = []
        for day in sorted(self._by_date.get(date, []), key=lambda d: (-len(d.files), d.name)):
            paths = set(day.files)
            if paths <= live and not paths & covered:
                chosen.append(day)
                covered |= paths
        return chosen, [f for f in files if f.path not in covered]

    def in_vocab(self, day: DayIndex) -> bool:
        return day.name in self.vocab_covers

    def day_texts(self, day: DayIndex) -> pa.Array:
        """The distinct texts of one day index (for a day index the vocabulary does not name yet)."""
        texts = pq.read_table(f"{self.root}/{day.name}", columns=["text"], filesystem=self.fs).column(0)
        return pc.unique(texts.combine_chunks())

    def lookup(self, day: DayIndex, texts: pa.Array) -> dict[str, list[int]]:
        """The row groups (per data file, path relative to the table) that hold any of ``texts`` (sorted,
        distinct). Reads only the index's row groups whose min/max can hold one of them."""
        pf = self.footers.open(f"{self.root}/{day.name}")
        wanted = np.array(texts.to_pylist(), dtype=str)
        groups = []
        for i in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(i).column(0).statistics
            if stats is None or not stats.has_min_max:
                groups.append(i)
                continue
            lo = int(np.searchsorted(wanted, stats.min, side="left"))
            if lo < len(wanted) and str(wanted[lo]) <= stats.max:
                groups.append(i)
        out: dict[str, set[int]] = {}
        if not groups:
            return {}
        hits = pf.read_row_groups(groups, use_threads=False)
        hits = hits.filter(pc.is_in(hits.column("text"), value_set=texts))
        for number, group in zip(hits.column("file").to_pylist(), hits.column("row_group").to_pylist(), strict=True):
            out.setdefault(day.files[number], set()).add(group)
        return {path: sorted(g) for path, g in out.items()}
