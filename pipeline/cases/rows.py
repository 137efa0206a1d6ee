"""Deleting catalog rows: the one small interface retention needs from the catalog, and its Parquet
implementation.

:class:`CatalogRows` is "delete the rows of kind K matching X": :meth:`~CatalogRows.doomed` lists them, and
:meth:`~CatalogRows.delete` removes them. :class:`ParquetRows` does it on the Parquet catalog by rewriting each
segment that holds a doomed row without it (the rows that stay go into a ``part-c-…`` segment, as compaction
writes them, before the old segment is deleted; a segment left empty is just deleted), and then brings the FAISS
face shards of the touched windows in step: rebuilt from the segments that remain and snapshotted again, or
removed when no face is left. A catalog in another table format implements the same two methods.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.catalog.format import (
    FACE_KIND,
    KIND_BY_NAME,
    compacted_key,
    content_digest,
    date_prefix,
    parse_segment_key,
    read_table,
    table_bytes,
)
from pipeline.catalog.shards import (
    MANIFEST_FILE,
    SHARD_FILE,
    ShardBuilder,
    ShardError,
    shard_prefix,
    window_of,
)
from pipeline.config.index import IndexConfig
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

ID_COLUMN = {"tracks": "track_id", "plates": "read_id", "faces": "face_id", "alerts": "alert_id"}
RowFilter = Callable[[dict[str, Any]], bool]
"""True for a row (as a dict of its columns) that should go."""


@dataclass(frozen=True)
class DoomedRow:
    kind: str
    segment: str
    ident: str
    camera_id: str
    time: datetime
    media_key: str = ""
    """An object the row points to (its crop), deleted with it by the caller."""


class CatalogRows(Protocol):
    def doomed(self, kind: str, before: datetime, matches: RowFilter) -> list[DoomedRow]: ...

    def delete(self, rows: Iterable[DoomedRow]) -> int: ...


class ParquetRows:
    """:class:`CatalogRows` over the Parquet catalog and the FAISS face shards."""

    def __init__(self, store: ObjectStore, settings: IndexConfig) -> None:
        self.store = store
        self.settings = settings

    def _segments(self, kind: str, before: datetime) -> list[str]:
        """Segments of ``kind`` whose date is not after ``before``'s (only those can hold older rows)."""
        day = before.astimezone(UTC).strftime("%Y-%m-%d")
        base = f"{self.settings.catalog_prefix}/{kind}/"
        dates = sorted({info.key[len(base):].split("/", 1)[0][5:] for info in self.store.list(base)
                        if info.key[len(base):].startswith("date=")})
        keys = []
        for date in (d for d in dates if d <= day):
            for info in self.store.list(date_prefix(self.settings.catalog_prefix, kind, date)):
                if parse_segment_key(info.key, self.settings.catalog_prefix) is not None:
                    keys.append(info.key)
        return keys

    def doomed(self, kind: str, before: datetime, matches: RowFilter) -> list[DoomedRow]:
        spec = KIND_BY_NAME[kind]
        out = []
        for key in self._segments(kind, before):
            try:
                table = read_table(self.store.get(key))
            except ObjectNotFound:
                continue
            for row in table.to_pylist():
                t = row[spec.time_column]
                if t < before and matches(row):
                    out.append(DoomedRow(kind, key, str(row[ID_COLUMN[kind]]), row["camera_id"], t,
                                         str(row.get("crop_key") or row.get("best_crop_key") or "")))
        return out

    def delete(self, rows: Iterable[DoomedRow]) -> int:
        by_segment: dict[str, set[str]] = defaultdict(set)
        kinds: dict[str, str] = {}
        for row in rows:
            by_segment[row.segment].add(row.ident)
            kinds[row.segment] = row.kind
        removed = 0
        windows: set[tuple[str, str]] = set()
        for key, idents in sorted(by_segment.items()):
            kind = kinds[key]
            removed += self._rewrite(key, kind, idents, windows)
        for date in sorted({w for _, w in windows}):
            self._resnapshot(date, {m for m, w in windows if w == date})
        return removed

    def _rewrite(self, key: str, kind: str, idents: set[str], windows: set[tuple[str, str]]) -> int:
        spec = KIND_BY_NAME[kind]
        try:
            table = read_table(self.store.get(key)).cast(spec.schema)
        except ObjectNotFound:
            return 0
        gone = pc.is_in(table[ID_COLUMN[kind]], value_set=pa.array(sorted(idents), type=pa.string()))
        if kind == "faces":
            for row in table.filter(gone).select(["model_id", "captured_at"]).to_pylist():
                windows.add((row["model_id"], window_of(row["captured_at"], self.settings.face_window)))
        kept = table.filter(pc.invert(gone))
        dropped = table.num_rows - kept.num_rows
        if dropped == 0:
            return 0
        if kept.num_rows:
            ref = parse_segment_key(key, self.settings.catalog_prefix)
            assert ref is not None
            new_key = compacted_key(self.settings.catalog_prefix, kind, ref.camera_id, ref.date,
                                    content_digest([*kept["ikey"].to_pylist(), f"retention:{key}"]))
            self.store.put(new_key, table_bytes(kept), content_type="application/vnd.apache.parquet")
        self.store.delete(key)
        log.info("retention: %s: %d row(s) removed, %d kept", key, dropped, kept.num_rows)
        return dropped

    def _resnapshot(self, window: str, models: set[str]) -> None:
        """Rebuild the face shards of ``window`` from the remaining segments (or remove them when empty)."""
        date = window[:10]
        segments = {i.key: i.etag for i in self.store.list(date_prefix(self.settings.catalog_prefix, "faces", date))
                    if parse_segment_key(i.key, self.settings.catalog_prefix) is not None}

        def fetch(key: str, etag: str, columns: list[str] | None) -> pa.Table:
            return read_table(self.store.get(key), columns).cast(
                FACE_KIND.schema if columns is None else pa.schema([FACE_KIND.schema.field(c) for c in columns]))

        builder = ShardBuilder(self.store, self.settings, fetch)
        for model in sorted(models):
            try:
                shard = builder.rebuild(model, window, segments)
            except ShardError:
                prefix = shard_prefix(self.settings.index_prefix, model, window)
                for name in (MANIFEST_FILE, SHARD_FILE):
                    try:
                        self.store.delete(f"{prefix}/{name}")
                    except ObjectNotFound:
                        pass
                log.info("retention: face shard %s/%s removed (no face left)", model, window)
                continue
            builder.snapshot(shard)
            log.info("retention: face shard %s/%s rebuilt with %d vector(s)", model, window, shard.count)
