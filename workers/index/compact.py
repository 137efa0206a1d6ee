"""Compaction: merge the segments of one kind/date/camera partition into one deduplicated segment.

Many small segments make every read slower, so the indexer merges a partition after it wrote
``index.compact_after_parts`` segments to it. The merged segment keeps one row per idempotency key
(the row the kind's ``latest_first`` ordering puts first: the highest plate revision, else the
latest ingested) and is written under ``part-c-{digest}.parquet`` before its inputs are deleted.
A crash in between leaves both — readers deduplicate, and the next compaction merges them. Segments
written while compaction runs are not in its listing and stay as they are. Readers that listed an
input just before it was deleted list again (see ``pipeline.search.catalog``).
"""

from __future__ import annotations

import logging

import duckdb
import pyarrow as pa

from pipeline.catalog.format import (
    KIND_BY_NAME,
    KindSpec,
    compacted_key,
    content_digest,
    parse_segment_key,
    partition_prefix,
    read_table,
    table_bytes,
)
from pipeline.config.index import IndexConfig
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


def arrow_table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation's result as one Arrow table (``to_arrow_table`` in DuckDB ≥ 1.4, ``arrow`` before)."""
    convert = getattr(relation, "to_arrow_table", None) or relation.arrow
    return convert()


def dedupe(kind: KindSpec, table: pa.Table) -> pa.Table:
    """One row per ``ikey``: the first by the kind's ``latest_first`` order; rows sorted by event time."""
    con = duckdb.connect()
    try:
        con.register("segment_rows", table)
        result = arrow_table(con.sql(
            f"SELECT * FROM segment_rows QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {kind.latest_first}) = 1 "
            f"ORDER BY {kind.time_column}, ikey"
        ))
    finally:
        con.close()
    return result.cast(kind.schema)


def compact_partition(store: ObjectStore, settings: IndexConfig, kind_name: str, date: str, camera_id: str) -> str | None:
    """Merge the partition's segments; the merged key, or None when there was nothing to merge."""
    kind = KIND_BY_NAME[kind_name]
    prefix = partition_prefix(settings.catalog_prefix, kind_name, camera_id, date)
    inputs = [i.key for i in store.list(prefix) if parse_segment_key(i.key, settings.catalog_prefix)]
    if len(inputs) < 2:
        return None
    tables = []
    for key in inputs:
        try:
            tables.append(read_table(store.get(key)).cast(kind.schema))
        except ObjectNotFound:
            log.info("compaction of %s: %s vanished (another compaction?); giving up this round", prefix, key)
            return None
    merged = dedupe(kind, pa.concat_tables(tables))
    key = compacted_key(settings.catalog_prefix, kind_name, camera_id, date, content_digest(inputs))
    store.put(key, table_bytes(merged), content_type="application/vnd.apache.parquet")
    for old in inputs:
        if old != key:
            store.delete(old)
    log.info("compacted %s: %d segment(s), %d row(s) -> %d row(s)", prefix, len(inputs),
             sum(t.num_rows for t in tables), merged.num_rows)
    return key
