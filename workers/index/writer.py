"""Buffers decoded records per kind/date/camera and writes them as Parquet segments on flush.

The writer knows nothing about offsets being committed: the indexer worker calls :meth:`flush`
and commits only after it returned, so every committed message is in a segment that the object
store acknowledged. A flush that fails half-way leaves some segments written and the offsets
uncommitted; the replay writes those records again (under the same key when the replayed batch
is the same, under another when it is not) and the query layer's deduplication hides the copies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from pipeline.catalog.format import (
    KindSpec,
    RowMeta,
    SegmentRef,
    build_table,
    content_digest,
    segment_key,
    table_bytes,
)
from pipeline.config.index import IndexConfig
from pipeline.store.base import ObjectStore
from schemas.common import WireMessage

log = logging.getLogger(__name__)

BufferKey = tuple[str, str, str, int]
"""(kind, date, camera, bus partition)."""


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
        self.records = 0
        self.bytes = 0
        self.oldest: float | None = None
        self.segments_written = 0
        self.records_written = 0

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
        """Write every buffer as a segment; returns what was written. Raises whatever the store raises."""
        written: list[Written] = []
        started = self.monotonic()
        for (kind_name, date, camera, partition), buf in sorted(self._buffers.items()):
            rows = buf.rows
            offsets = [r["src_offset"] for r in rows]
            digest = content_digest(f"{r['ikey']}#{r['src_offset']}" for r in rows)
            key = segment_key(self.settings.catalog_prefix, kind_name, camera, date, partition,
                              min(offsets), max(offsets), digest)
            table = build_table(buf.kind, rows)
            info = self.store.put(key, table_bytes(table), content_type="application/vnd.apache.parquet")
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


def now_utc() -> datetime:
    return datetime.now(UTC)
