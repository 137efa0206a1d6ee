"""Buffers decoded records per kind/date/camera and writes them as Parquet segments on flush.

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
from typing import Any

import pyarrow as pa

from pipeline.catalog.format import (
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

log = logging.getLogger(__name__)

BufferKey = tuple[str, str, str, int]
"""(kind, date, camera, bus partition)."""

_KNOWN_PARTITIONS = 256


_META_COLUMNS = frozenset({"ikey", "ingested_at", "src_partition", "src_offset"})


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
        written: list[Written] = []
        started = self.monotonic()
        for (kind_name, date, camera, partition), buf in sorted(self._buffers.items()):
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
            self.records_written += len(rows)
        self.segments_written += len(written)
        if written:
            log.info("catalog: wrote %d segment(s), %d record(s) in %.2f s", len(written), self.records,
                     self.monotonic() - started)
        self._buffers.clear()
        self.records = 0
        self.bytes = 0
        self.oldest = None
        return written

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
