"""Migrate the Parquet segments of the catalog into the Delta tables (``tubeline catalog migrate``).

Per kind and UTC date: read every segment of the date (a listing of ``{catalog_prefix}/{kind}/date=D/``),
keep one row per ``ikey`` (the kind's ``latest_first`` row, as the query layer does) and append it in one
commit that records ``txn(app_id="tubeline-migrate:{date}", version=1)``. A date already migrated is
skipped, so the command can be interrupted and run again; the segments are left in place (delete them with
the store's tools once the tables are checked).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.catalog.format import KIND_BY_NAME, KINDS, parse_segment_key, read_table
from pipeline.catalog.table import PARTITION_COLUMNS, TableCatalog, dedupe_sorted, with_partitions
from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

MIGRATE_APP = "tubeline-migrate"


@dataclass
class MigrationReport:
    segments: int = 0
    rows: int = 0
    dates_done: int = 0
    dates_skipped: int = 0
    per_kind: dict[str, int] = field(default_factory=dict)


def _segments_by_date(store: ObjectStore, prefix: str, kind_name: str) -> dict[str, list[str]]:
    by_date: dict[str, list[str]] = {}
    for info in store.list(f"{prefix}/{kind_name}/"):
        ref = parse_segment_key(info.key, prefix)
        if ref is not None and ref.kind == kind_name:
            by_date.setdefault(ref.date, []).append(info.key)
    return by_date


def migrate(store: ObjectStore, tables: TableCatalog, kinds: list[str] | None = None) -> MigrationReport:
    """Copy every Parquet segment's rows into the tables, once per kind and date."""
    from deltalake import CommitProperties, Transaction, write_deltalake

    report = MigrationReport()
    prefix = tables.settings.catalog_prefix
    for kind in [KIND_BY_NAME[k] for k in kinds] if kinds else list(KINDS):
        tables.open(kind.name)
        for date, keys in sorted(_segments_by_date(store, prefix, kind.name).items()):
            aid = f"{MIGRATE_APP}:{date}"
            if tables.committed(kind.name, [aid]):
                report.dates_skipped += 1
                continue
            rows = pa.concat_tables([read_table(store.get(k)).cast(kind.schema) for k in sorted(keys)])
            merged = dedupe_sorted(kind, with_partitions(kind, rows, tables.settings.table_buckets))
            write_deltalake(
                tables.uri(kind.name), merged, partition_by=PARTITION_COLUMNS, mode="append",
                storage_options=tables.options, writer_properties=tables.writer_properties(),
                commit_properties=CommitProperties(app_transactions=[Transaction(app_id=aid, version=1)]),
            )
            report.segments += len(keys)
            report.rows += merged.num_rows
            report.dates_done += 1
            report.per_kind[kind.name] = report.per_kind.get(kind.name, 0) + merged.num_rows
            log.info("migrated %s %s: %d segment(s), %d row(s)", kind.name, date, len(keys), merged.num_rows)
    return report
