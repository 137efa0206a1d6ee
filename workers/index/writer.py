"""Buffers decoded records per kind/date/camera and writes them as Parquet segments on flush (or, with
``index.catalog_format: delta``, commits them to the Delta tables: :meth:`CatalogWriter.flush_tables`).

The writer knows nothing about offsets being committed: the indexer worker calls :meth:`flush`
and commits only after it returned, so every committed message is in a segment that the object
store acknowledged (or that waits in the worker's spool).

Redelivered records are not written again: a row whose identity — its idempotency key plus a digest
of its content (every column but the ingest metadata), so a later plate revision or any other update
under the same key is a new row, which the query layer ranks as before — is already in the catalog
partition is dropped before the segment is written. The identities of a kind/date/camera partition
are read once from its segments when the writer first touches it and kept in memory for the most
recently used ``_KNOWN_PARTITIONS`` partitions. Only this writer adds to a partition it owns (a
camera's messages share one bus partition), so the set stays complete; during a rebalance two
writers may each write a copy, which the query layer and compaction remove.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline.catalog.format import (
    FACE_KIND,
    KIND_BY_NAME,
    KindSpec,
    RowMeta,
    SegmentRef,
    build_table,
    content_digest,
    parse_segment_key,
    partition_prefix,
    read_table,
    segment_key,
    table_bytes,
)
from pipeline.config.index import IndexConfig
from pipeline.store.base import ObjectNotFound, ObjectStore
from schemas.common import WireMessage

if TYPE_CHECKING:
    from pipeline.catalog.table import TableCatalog

log = logging.getLogger(__name__)

BufferKey = tuple[str, str, str, int]
"""(kind, date, camera, bus partition)."""

_KNOWN_PARTITIONS = 256


_META_COLUMNS = frozenset({"ikey", "ingested_at", "src_partition", "src_offset"})


def last_copies(table: pa.Table) -> pa.Table:
    """The table without earlier copies of a row (same identity): the last copy — highest offset — stays."""
    seen: set[str] = set()
    keep = []
    for identity in reversed(row_identities(table)):
        keep.append(identity not in seen)
        seen.add(identity)
    return table if all(keep) else table.filter(pa.array(keep[::-1]))


def row_identities(table: pa.Table) -> list[str]:
    """Per row ``{ikey}#{content digest}``: equal for a redelivered record, different for an update.

    Computed from the Arrow values, so a row read back from Parquet gives the same identity as at write."""
    content = table.select([n for n in table.column_names if n not in _META_COLUMNS]).to_pylist()
    return [
        f"{ikey}#{hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]}"
        for ikey, row in zip(table.column("ikey").to_pylist(), content, strict=True)
    ]


@dataclass(frozen=True)
class Written:
    """A segment that was written: where, its etag, and its table (kept for the FAISS shards)."""

    ref: SegmentRef
    etag: str
    table: pa.Table


@dataclass
class _Buffer:
    kind: KindSpec
    rows: list[dict[str, Any]]


class CatalogWriter:
    """Collects rows and writes one segment per kind/date/camera/partition on :meth:`flush`."""

    def __init__(
        self,
        store: ObjectStore,
        settings: IndexConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.monotonic = monotonic
        self._buffers: dict[BufferKey, _Buffer] = {}
        self._known: OrderedDict[tuple[str, str, str], set[str]] = OrderedDict()
        self.records = 0
        self.bytes = 0
        self.oldest: float | None = None
        self.segments_written = 0
        self.records_written = 0
        self.duplicates_skipped = 0

    def add(self, kind: KindSpec, message: WireMessage, meta: RowMeta, size: int = 0) -> None:
        """Buffer one decoded message."""
        row = kind.to_row(message)
        row["ikey"] = message.idempotency_key()
        row["ingested_at"] = meta.ingested_at
        row["src_partition"] = meta.partition
        row["src_offset"] = meta.offset
        date = kind.event_time(message).astimezone(UTC).strftime("%Y-%m-%d")
        key = (kind.name, date, row["camera_id"], meta.partition)
        self._buffers.setdefault(key, _Buffer(kind, [])).rows.append(row)
        self.records += 1
        self.bytes += size
        if self.oldest is None:
            self.oldest = self.monotonic()

    def due(self) -> bool:
        """True when the buffer is full or its oldest record waited ``flush_interval_s``."""
        if self.records >= self.settings.flush_max_records or self.bytes >= self.settings.flush_max_bytes:
            return True
        return self.oldest is not None and self.monotonic() - self.oldest >= self.settings.flush_interval_s

    def flush(self) -> list[Written]:
        """Write every buffer's new rows as a segment; returns what was written. Raises whatever the store raises."""
        started = self.monotonic()
        written, rows = self._write_segments(self._buffers)
        self.records_written += rows
        self.segments_written += len(written)
        if written:
            log.info("catalog: wrote %d segment(s), %d record(s) in %.2f s", len(written), self.records,
                     self.monotonic() - started)
        self._reset()
        return written

    def flush_tables(self, tables: TableCatalog, group: str) -> list[Written]:
        """``index.catalog_format: delta``: commit each buffered kind to its Delta table, exactly once with
        respect to the bus offsets (:meth:`TableCatalog.append`: rows at or below the offset a partition already
        committed are dropped; the commit records the new last offset). Face rows are written as Parquet segments
        first as well — the FAISS shards are built from segments, unchanged — and those segments are returned.

        Within the batch a redelivered record (same identity, see :func:`row_identities`) keeps its last copy,
        so the partition's last offset is always among the rows committed. Copies in different flushes (a
        producer's replay, not the indexer's) are left to the query layer and compaction, which keep one row
        per ``ikey``. Raises what the store or the table raises; the buffers are then kept, nothing is
        committed to the bus, and a restart replays."""
        started = self.monotonic()
        faces = {k: b for k, b in self._buffers.items() if k[0] == FACE_KIND.name}
        written, _ = self._write_segments(faces)
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for key, buf in sorted(self._buffers.items()):
            by_kind.setdefault(key[0], []).extend(buf.rows)
        committed = 0
        for kind_name, rows in sorted(by_kind.items()):
            kind = KIND_BY_NAME[kind_name]
            table = last_copies(build_table(kind, rows))
            added = tables.append(kind, table, group=group)
            committed += added
            self.duplicates_skipped += len(rows) - added
        self.records_written += committed
        self.segments_written += len(written)
        if by_kind:
            log.info("catalog: committed %d of %d record(s) to %d table(s) in %.2f s", committed, self.records,
                     len(by_kind), self.monotonic() - started)
        self._reset()
        return written

    def _write_segments(self, buffers: dict[BufferKey, _Buffer]) -> tuple[list[Written], int]:
        """One segment per buffer of its rows the catalog partition does not hold yet: (segments, rows written)."""
        written: list[Written] = []
        rows_written = 0
        for (kind_name, date, camera, partition), buf in sorted(buffers.items()):
            known = self.known(kind_name, date, camera)
            table = build_table(buf.kind, buf.rows)
            keep = []
            for identity in row_identities(table):
                keep.append(identity not in known)
                known.add(identity)
            self.duplicates_skipped += keep.count(False)
            if not any(keep):
                continue
            rows = [row for row, kept in zip(buf.rows, keep, strict=True) if kept]
            table = table.filter(pa.array(keep))
            offsets = [r["src_offset"] for r in rows]
            digest = content_digest(f"{r['ikey']}#{r['src_offset']}" for r in rows)
            key = segment_key(self.settings.catalog_prefix, kind_name, camera, date, partition,
                              min(offsets), max(offsets), digest)
            try:
                info = self.store.put(key, table_bytes(table), content_type="application/vnd.apache.parquet")
            except BaseException:
                self._known.pop((kind_name, date, camera), None)  # some identities were never written: reload
                raise
            written.append(Written(SegmentRef(kind_name, camera, date, key), info.etag, table))
            rows_written += len(rows)
        return written, rows_written

    def _reset(self) -> None:
        self._buffers.clear()
        self.records = 0
        self.bytes = 0
        self.oldest = None

    def known(self, kind_name: str, date: str, camera: str) -> set[str]:
        """Identities of the rows the catalog partition holds (read from its segments on first use)."""
        part = (kind_name, date, camera)
        cached = self._known.get(part)
        if cached is not None:
            self._known.move_to_end(part)
            return cached
        known: set[str] = set()
        prefix = self.settings.catalog_prefix
        schema = KIND_BY_NAME[kind_name].schema
        for info in self.store.list(partition_prefix(prefix, kind_name, camera, date)):
            if parse_segment_key(info.key, prefix) is None:
                continue
            try:
                table = read_table(self.store.get(info.key)).cast(schema)
            except ObjectNotFound:
                continue  # compacted away while listing: its rows are in the merged segment, listed too
            except (pa.ArrowInvalid, ValueError, OSError) as exc:
                log.warning("catalog: segment %s unreadable (%s); its rows cannot be recognised", info.key, exc)
                continue
            known.update(row_identities(table))
        self._known[part] = known
        while len(self._known) > _KNOWN_PARTITIONS:
            self._known.popitem(last=False)
        return known


def now_utc() -> datetime:
    return datetime.now(UTC)
