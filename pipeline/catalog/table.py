"""The catalog as Delta Lake tables: one table per kind, partitioned by UTC date and bucket.

Design and the measurements behind it: ``docs/design/catalog.md``. In short:

* a table per kind at ``{index.table_prefix}/{kind}`` in the object store (S3 through delta-rs, whose
  commits are conditional puts that SeaweedFS and S3 honour; or the local folder store);
* columns: the kind's schema (:mod:`pipeline.catalog.format`) plus the partition columns ``date`` (UTC
  date of the event time) and ``bucket`` (CRC-32 of the plate text for plates, of the camera for the
  other kinds, modulo ``index.table_buckets``);
* :meth:`TableCatalog.append` is exactly-once with respect to bus offsets: each commit records, per bus
  partition, ``txn(app_id="{group}:{topic}:{partition}", version=last offset)``, and rows at or below a
  recorded version are dropped before writing;
* :meth:`TableCatalog.compact` rewrites a day's partitions deduplicated and sorted (plates by text) in
  one atomic replace; :meth:`TableCatalog.delete_rows` is the retention hook; :meth:`TableCatalog.vacuum`
  removes files no longer in the log (space is reclaimed there).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.catalog.format import KIND_BY_NAME, PLATE_KIND, KindSpec

if TYPE_CHECKING:
    from pipeline.config.index import IndexConfig
    from pipeline.config.store import StoreConfig

log = logging.getLogger(__name__)

PARTITION_COLUMNS = ["date", "bucket"]
RANGE_BUCKET = -1
"""The ``bucket`` of compacted plate files: a closed day's plates are one partition sorted by text, so its
files hold disjoint text ranges (found by their min/max in the log) instead of 16 files that each span every
text (a prefix query opens one file per day instead of ``table_buckets``)."""
_COMMIT_ATTEMPTS = 8
_REBASES = 16
"""Times delta-rs may rebase a commit onto commits of *other* bus partitions before giving up."""
_STATS_MAX_CHARS = 64
"""Strings longer than this get no min/max statistics (free text would only bloat the log)."""


class TableError(RuntimeError):
    """A table operation failed (after retries)."""


class TableMissing(TableError):
    """The kind's table does not exist yet and this catalog may not create it (a reader)."""


def bucket_column(kind: KindSpec) -> str:
    """The column a kind's rows are bucketed by: plate text for plates, camera for the rest."""
    return "text" if kind.name == PLATE_KIND.name else "camera_id"


def bucket_of(value: str, buckets: int) -> int:
    return zlib.crc32(value.encode("utf-8")) % buckets


def sort_columns(kind: KindSpec) -> list[tuple[str, str]]:
    """Row order inside compacted files: what the query filters on first, so min/max statistics prune."""
    if kind.name == PLATE_KIND.name:
        return [("text", "ascending"), ("captured_at", "ascending")]
    return [("camera_id", "ascending"), (kind.time_column, "ascending")]


def table_schema(kind: KindSpec) -> pa.Schema:
    return pa.schema([*kind.schema, pa.field("date", pa.string(), nullable=False),
                      pa.field("bucket", pa.int32(), nullable=False)])


def with_partitions(kind: KindSpec, table: pa.Table, buckets: int) -> pa.Table:
    """The kind's rows with ``date`` and ``bucket`` added (``date`` from the event time, UTC)."""
    times = table.column(kind.time_column)
    dates = pc.strftime(times, format="%Y-%m-%d") if table.num_rows else pa.array([], pa.string())
    keys = table.column(bucket_column(kind)).to_pylist()
    bucket = pa.array([bucket_of(k, buckets) for k in keys], pa.int32())
    out = table.cast(kind.schema).append_column(table_schema(kind).field("date"), dates)
    return out.append_column(table_schema(kind).field("bucket"), bucket)


def app_id(group: str, topic: str, partition: int) -> str:
    return f"{group}:{topic}:{partition}"


@dataclass(frozen=True)
class FileEntry:
    """A data file the log lists: where, how big, its partition and (for plates) its text range."""

    path: str
    size: int
    date: str
    bucket: int
    rows: int
    text_min: str | None
    text_max: str | None


class TableCatalog:
    """The Delta tables of the catalog in one object store (S3 or a local folder)."""

    def __init__(self, store: StoreConfig, settings: IndexConfig, *, create: bool = True) -> None:
        """``create=False``: a reader (the API may only read the tables, docs/security.md): a table that does
        not exist yet is :class:`TableMissing` (no files) instead of being created."""
        self.store_config = store
        self.create = create
        self.settings = settings
        if store.backend == "s3":
            s3 = store.s3
            scheme = "https" if s3.secure else "http"
            self.base = f"s3://{s3.bucket}/{settings.table_prefix}"
            self.options: dict[str, str] = {
                "AWS_ENDPOINT_URL": f"{scheme}://{s3.endpoint}", "AWS_REGION": s3.region,
                "AWS_ALLOW_HTTP": "false" if s3.secure else "true",
            }
            if s3.access_key is not None and s3.secret_key is not None:
                self.options["AWS_ACCESS_KEY_ID"] = s3.access_key.get_secret_value()
                self.options["AWS_SECRET_ACCESS_KEY"] = s3.secret_key.get_secret_value()
            self.fs: pafs.FileSystem = pafs.S3FileSystem(
                endpoint_override=f"{scheme}://{s3.endpoint}", region=s3.region,
                access_key=self.options.get("AWS_ACCESS_KEY_ID"), secret_key=self.options.get("AWS_SECRET_ACCESS_KEY"),
                scheme=scheme, allow_bucket_creation=False,
            )
            self._fs_root = f"{s3.bucket}/{settings.table_prefix}"
        else:
            root = Path(store.local.root).resolve() / settings.table_prefix
            root.mkdir(parents=True, exist_ok=True)
            self.base = str(root)
            self.options = {}
            self.fs = pafs.LocalFileSystem()
            self._fs_root = str(root)
        self._tables: dict[str, Any] = {}
        self._append_lock = threading.Lock()
        self.before_commit: Callable[[str], None] | None = None
        """Called with the kind's name after an append wrote its data files, before it commits (fault point)."""

    # -- tables ----------------------------------------------------------------------------------
    def uri(self, kind_name: str) -> str:
        return f"{self.base}/{kind_name}"

    def fs_path(self, kind_name: str, relative: str) -> str:
        """A data file's path for :attr:`fs` (PyArrow), from its path relative to the table."""
        return f"{self._fs_root}/{kind_name}/{relative}"

    def open(self, kind_name: str, *, fresh: bool = True) -> Any:
        """The kind's ``DeltaTable``, creating the empty table on first use. ``fresh``: brought to the latest
        version (reads the new log entries only); otherwise the version this object last saw."""
        cached = self._tables.get(kind_name)
        if cached is not None:
            if fresh:
                cached.update_incremental()
            return cached
        self._tables[kind_name] = self._open(kind_name)
        return self._tables[kind_name]

    def _open(self, kind_name: str) -> Any:
        from deltalake import DeltaTable, write_deltalake
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri(kind_name), storage_options=self.options)
        except TableNotFoundError:
            if not self.create:
                raise TableMissing(kind_name) from None
            kind = KIND_BY_NAME[kind_name]
            try:
                write_deltalake(self.uri(kind_name), table_schema(kind).empty_table(), partition_by=PARTITION_COLUMNS,
                                mode="ignore", storage_options=self.options, name=kind_name,
                                description=f"Tubeline catalog: {kind_name}")
            except Exception as exc:  # noqa: BLE001 — another process created it first: fine
                log.info("table %s: create raced (%s); opening", kind_name, exc)
            return DeltaTable(self.uri(kind_name), storage_options=self.options)

    def writer_properties(self) -> Any:
        from deltalake import WriterProperties

        return WriterProperties(compression="ZSTD", max_row_group_size=self.settings.table_row_group_rows)

    # -- exactly-once appends --------------------------------------------------------------------
    def committed(self, kind_name: str, app_ids: Iterable[str]) -> dict[str, int]:
        """The last offset each app id committed to the kind's table (absent: never)."""
        table = self.open(kind_name)
        out: dict[str, int] = {}
        for aid in app_ids:
            version = table.transaction_version(aid)
            if version is not None:
                out[aid] = int(version)
        return out

    def append(self, kind: KindSpec, rows: pa.Table, *, group: str) -> int:
        """Append rows (the kind's schema, with ``src_partition``/``src_offset``) exactly once; rows appended.

        Two phases on one pinned snapshot of the log: the versions recorded for the rows' bus partitions
        are read from the snapshot and rows at or below them dropped; the rest is written as data files
        (one per date/bucket, sorted as compaction sorts); then one commit adds the files with the new
        last offset per partition (``txn`` actions). Between the two, :attr:`before_commit` is called
        (a fault point for tests). A concurrent commit of other partitions is rebased by delta-rs; a
        concurrent commit of one of *these* app ids (a zombie writer after a rebalance) makes delta-rs's
        conflict checker refuse the commit, and the attempt starts again from a new snapshot, so the
        check and the commit always see the same versions. Files of a refused attempt are not in the
        log (no reader sees them; :meth:`vacuum` removes them)."""
        from deltalake import CommitProperties, Transaction
        from deltalake.exceptions import CommitFailedError

        topic = kind.topic.name
        with self._append_lock:
            for attempt in range(_COMMIT_ATTEMPTS):
                table = self.open(kind.name)
                parts = sorted(set(rows.column("src_partition").to_pylist()))
                ids = {p: app_id(group, topic, p) for p in parts}
                done = {p: int(v) for p, a in ids.items() if (v := table.transaction_version(a)) is not None}
                fresh = self._after(rows, done)
                if fresh.num_rows == 0:
                    return 0
                txns = [Transaction(app_id=ids[p], version=int(pc.max(fresh.filter(
                    pc.equal(fresh.column("src_partition"), p)).column("src_offset")).as_py()))
                    for p in sorted(set(fresh.column("src_partition").to_pylist()))]
                adds = self._write_files(kind, with_partitions(kind, fresh, self.settings.table_buckets))
                if self.before_commit is not None:
                    self.before_commit(kind.name)
                try:
                    table.create_write_transaction(
                        adds, "append", table_schema(kind), partition_by=PARTITION_COLUMNS,
                        commit_properties=CommitProperties(app_transactions=txns, max_commit_retries=_REBASES),
                    )
                    return fresh.num_rows
                except CommitFailedError as exc:
                    log.info("table %s: commit refused (attempt %d): %s", kind.name, attempt + 1, exc)
        msg = f"table {kind.name}: commit failed {_COMMIT_ATTEMPTS} times"
        raise TableError(msg)

    def _write_files(self, kind: KindSpec, data: pa.Table) -> list[Any]:
        """Write one data file per (date, bucket) of ``data`` (partition columns included) into the table's
        folder; their add actions (path, size, partition values, per-column statistics)."""
        from deltalake.transaction import AddAction

        out = []
        dates, buckets = data.column("date").to_pylist(), data.column("bucket").to_pylist()
        for date, bucket in sorted(set(zip(dates, buckets, strict=True))):
            mask = pc.and_(pc.equal(data.column("date"), date), pc.equal(data.column("bucket"), bucket))
            body = data.filter(mask).sort_by(sort_columns(kind)).drop_columns(PARTITION_COLUMNS)
            folder = f"date={_checked_date(date)}/bucket={int(bucket)}"
            relative = f"{folder}/part-{uuid.uuid4().hex}.zstd.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(body, sink, compression="zstd", row_group_size=self.settings.table_row_group_rows,
                           write_statistics=True)
            payload = sink.getvalue()
            if isinstance(self.fs, pafs.LocalFileSystem):
                self.fs.create_dir(self.fs_path(kind.name, folder), recursive=True)
            with self.fs.open_output_stream(self.fs_path(kind.name, relative)) as stream:
                stream.write(payload)
            out.append(AddAction(relative, payload.size, {"date": date, "bucket": str(int(bucket))},
                                 int(time.time() * 1000), True, file_stats(body)))
        return out

    @staticmethod
    def _after(rows: pa.Table, done: Mapping[int, int]) -> pa.Table:
        if not done:
            return rows
        keep = pa.array([o > done.get(p, -1) for p, o in zip(
            rows.column("src_partition").to_pylist(), rows.column("src_offset").to_pylist(), strict=True)])
        return rows.filter(keep)

    # -- the manifest ----------------------------------------------------------------------------
    def files(self, kind_name: str, dates: Iterable[str] | None = None,
              buckets: Iterable[int] | None = None, *, fresh: bool = True) -> list[FileEntry]:
        """The files of the table (from the log, no listing), optionally only some partitions.
        ``fresh=False``: of the version last seen (the query layer refreshes explicitly). A table a reader
        cannot see yet has no files."""
        try:
            actions = pa.table(self.open(kind_name, fresh=fresh).get_add_actions(flatten=True))
        except TableMissing:
            return []
        names = set(actions.column_names)
        wanted_dates = set(dates) if dates is not None else None
        wanted_buckets = set(buckets) if buckets is not None else None
        cols = {n: actions.column(n).to_pylist() for n in
                ("path", "size_bytes", "partition.date", "partition.bucket", "num_records", "min.text", "max.text")
                if n in names}
        out = []
        for i, path in enumerate(cols["path"]):
            date, bucket = cols["partition.date"][i], int(cols["partition.bucket"][i])
            if (wanted_dates is not None and date not in wanted_dates) or (
                    wanted_buckets is not None and bucket not in wanted_buckets):
                continue
            out.append(FileEntry(path, int(cols["size_bytes"][i]), date, bucket, int(cols["num_records"][i] or 0),
                                 cols.get("min.text", [None] * (i + 1))[i], cols.get("max.text", [None] * (i + 1))[i]))
        return out

    def dates(self, kind_name: str) -> list[str]:
        return sorted({f.date for f in self.files(kind_name)})

    def read(self, kind_name: str, dates: Iterable[str] | None = None) -> pa.Table:
        """Every row of the kind (optionally of some dates) through delta-rs's own reader."""
        table = self.open(kind_name)
        filters = [("date", "in", sorted(dates))] if dates is not None else None
        return pa.table(table.to_pyarrow_table(filters=filters)) if filters else pa.table(table.to_pyarrow_table())

    # -- maintenance -----------------------------------------------------------------------------
    def compact(self, kind_name: str, dates: Iterable[str]) -> dict[str, int]:
        """Rewrite each (date, bucket) partition of the dates deduplicated (latest per ``ikey``) and sorted,
        one atomic replace per date. Returns files before/after and rows before/after."""
        from deltalake import write_deltalake

        kind = KIND_BY_NAME[kind_name]
        stats = {"files_before": 0, "files_after": 0, "rows_before": 0, "rows_after": 0}
        for date in sorted(set(dates)):
            before = self.files(kind_name, [date])
            if not before:
                continue
            rows = self.read(kind_name, [date])
            if kind.name == PLATE_KIND.name:
                rows = rows.set_column(rows.schema.get_field_index("bucket"), "bucket",
                                       pa.repeat(pa.scalar(RANGE_BUCKET, pa.int32()), rows.num_rows))
            merged = dedupe_sorted(kind, rows)
            write_deltalake(
                self.uri(kind_name), merged, partition_by=PARTITION_COLUMNS, mode="overwrite",
                predicate=f"date = '{_checked_date(date)}'", storage_options=self.options,
                writer_properties=self.writer_properties(), target_file_size=512 << 20,
            )
            after = self.files(kind_name, [date])
            stats["files_before"] += len(before)
            stats["files_after"] += len(after)
            stats["rows_before"] += rows.num_rows
            stats["rows_after"] += merged.num_rows
        log.info("table %s: compacted %s", kind_name, stats)
        return stats

    def delete_rows(self, kind_name: str, predicate: str) -> int:
        """Delete the rows matching a Delta/SQL predicate (retention, governance); rows deleted.

        The predicate is trusted text from the configuration or code (never a user's query)."""
        result = self.open(kind_name).delete(predicate)
        deleted = int(result.get("num_deleted_rows", 0) or 0)
        log.info("table %s: deleted %d row(s) where %s", kind_name, deleted, predicate)
        return deleted

    def delete_before(self, kind_name: str, date: str) -> int:
        """Retention by day: drop every row whose UTC date is before ``date`` (whole files, no rewrite)."""
        return self.delete_rows(kind_name, f"date < '{_checked_date(date)}'")

    def vacuum(self, kind_name: str, retain_hours: int = 0) -> list[str]:
        """Remove files no longer in the log (older than ``retain_hours``); the paths removed. A full vacuum:
        besides the files deletes and compaction removed, also files a crashed writer left uncommitted."""
        removed = self.open(kind_name).vacuum(retention_hours=retain_hours, dry_run=False,
                                              enforce_retention_duration=False, full=True)
        return list(removed)

    def stored_bytes(self, kind_name: str) -> int:
        """Bytes of every object under the table (data files, log), listed — a measurement, not a plan."""
        selector = pafs.FileSelector(f"{self._fs_root}/{kind_name}", recursive=True, allow_not_found=True)
        return sum(i.size or 0 for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File)


def _checked_date(date: str) -> str:
    if len(date) != 10 or not date.replace("-", "").isdigit():
        msg = f"not a date: {date!r}"
        raise TableError(msg)
    return date


def _stat_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def file_stats(table: pa.Table) -> str:
    """Delta statistics of one data file: row count, and per flat column its null count and min/max (for
    strings only when no value is longer than :data:`_STATS_MAX_CHARS`; never NaN or infinite). delta-rs
    skips files by them (deletes, its reader) and the query layer prunes plate files by ``text``."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for field in table.schema:
        typ = field.type
        if not (pa.types.is_string(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ)
                or pa.types.is_timestamp(typ)):
            continue
        column = table.column(field.name)
        nulls[field.name] = column.null_count
        if pa.types.is_string(typ) and (pc.max(pc.utf8_length(column)).as_py() or 0) > _STATS_MAX_CHARS:
            continue
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None or high is None or (isinstance(low, float) and not (math.isfinite(low) and math.isfinite(high))):
            continue
        mins[field.name], maxs[field.name] = _stat_value(low), _stat_value(high)
    return json.dumps({"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
                      ensure_ascii=False)


def dedupe_sorted(kind: KindSpec, rows: pa.Table) -> pa.Table:
    con = duckdb.connect()
    try:
        con.register("rows_in", rows)
        order = ", ".join(c for c, _ in sort_columns(kind))
        rel = con.sql(f"SELECT * FROM rows_in QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {kind.latest_first}) = 1 "
                      f"ORDER BY bucket, {order}, ikey")
        convert = getattr(rel, "to_arrow_table", None) or rel.arrow
        result: pa.Table = convert()
    finally:
        con.close()
    return result.cast(table_schema(kind))
