"""The catalog's Delta tables on the real S3 server (SeaweedFS) and on the local folder store:
exactly-once appends across a crash, concurrent indexers (and a zombie writer of one partition), retention + compaction + vacuum, a second reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from pipeline.catalog.format import PLATE_KIND
from pipeline.catalog.plate_index import compact_and_index
from pipeline.catalog.table import TableCatalog, table_schema, with_partitions
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.index import IndexConfig
from pipeline.search.plates import wildcard_to_like, wildcard_to_regex
from pipeline.search.tables import PlateQuery, TablePlates
from tests.catalog_rows import plate_rows

GROUP = "tubeline-index"


@pytest.fixture(params=["local", "s3"])
def tables(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[TableCatalog]:
    settings = IndexConfig(table_prefix=f"tables-{unique_name}", table_buckets=4)
    if request.param == "local":
        config = with_overrides(TubelineConfig(), {"store.backend": "local", "store.local.root": str(tmp_path)})
    else:
        config = request.getfixturevalue("real_stack").config
    yield TableCatalog(config.store, settings)


def _second_reader(tables: TableCatalog) -> pa.Table:
    """PyArrow's own Parquet reader over exactly the files the log lists (not delta-rs's reader)."""
    paths = [tables.fs_path("plates", f.path) for f in tables.files("plates")]
    if not paths:
        return PLATE_KIND.schema.empty_table()
    return pads.dataset(paths, schema=PLATE_KIND.schema, format="parquet", filesystem=tables.fs).to_table()


def test_crash_between_data_write_and_commit_leaves_no_duplicate_and_no_loss(tables: TableCatalog) -> None:
    batch = plate_rows(60)
    tables.open("plates")
    # the crashed indexer wrote a data file into the table's folder but never committed it
    orphan = with_partitions(PLATE_KIND, batch, 4).cast(table_schema(PLATE_KIND))
    tables.fs.create_dir(tables.fs_path("plates", "date=2026-03-01/bucket=0"), recursive=True)
    with tables.fs.open_output_stream(tables.fs_path("plates", "date=2026-03-01/bucket=0/part-crashed.parquet")) as out:
        pq.write_table(orphan, out)
    assert tables.read("plates").num_rows == 0  # not in the log: no reader sees it
    # the replay commits the batch; a second replay (crash after the table commit, before the offset
    # commit) and an overlapping later batch add only what is new
    assert tables.append(PLATE_KIND, batch, group=GROUP) == 60
    assert tables.append(PLATE_KIND, batch, group=GROUP) == 0
    assert tables.append(PLATE_KIND, plate_rows(90), group=GROUP) == 30
    rows = tables.read("plates")
    assert rows.num_rows == 90
    assert sorted(rows.column("src_offset").to_pylist()) == list(range(90))
    assert tables.committed("plates", [f"{GROUP}:{PLATE_KIND.topic.name}:0"]) == {f"{GROUP}:{PLATE_KIND.topic.name}:0": 89}
    second = _second_reader(tables)
    assert sorted(second.column("ikey").to_pylist()) == sorted(rows.column("ikey").to_pylist())
    assert "part-crashed.parquet" in {Path(p).name for p in tables.vacuum("plates")}


def test_concurrent_indexers_commit_safely(tables: TableCatalog) -> None:
    """Four indexers commit to one table at once, each owning its bus partition as a consumer group assigns them,
    each replaying an overlapping batch (a redelivery after a crash): every row once, none lost.

    Two writers of the SAME partition (a zombie after a rebalance): the next test."""
    tables.open("plates")
    errors: list[BaseException] = []

    def indexer(partition: int) -> None:
        catalog = TableCatalog(tables.store_config, tables.settings)  # each indexer its own (a process of its own)
        try:
            for first in (0, 20, 10):  # the third batch overlaps both earlier ones: a replay after a crash
                catalog.append(PLATE_KIND, plate_rows(20, partition=partition, first_offset=first), group=GROUP)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=indexer, args=(i,)) for i in range(4)]  # one writer per bus partition
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ikeys = tables.read("plates").column("ikey").to_pylist()
    assert len(ikeys) == len(set(ikeys)) == 160  # 4 partitions × offsets 0..39, once each


def test_two_writers_of_one_partition_never_double_a_row(tables: TableCatalog) -> None:
    """The zombie writer: a member that lost bus partition 0 in a rebalance has written its data files and is
    about to commit offsets 0..19 when the partition's new owner (its own catalog: another process) commits
    0..29, replayed from the last Kafka offset commit. The old member's commit must be refused — the check of
    the recorded offsets and the commit use one snapshot — and its retry finds nothing left to add."""
    tables.open("plates")
    zombie, owner = (TableCatalog(tables.store_config, tables.settings) for _ in range(2))
    owner_added: list[int] = []

    def owner_commits_first(kind_name: str) -> None:
        if not owner_added:
            owner_added.append(owner.append(PLATE_KIND, plate_rows(30), group=GROUP))

    zombie.before_commit = owner_commits_first
    assert zombie.append(PLATE_KIND, plate_rows(20), group=GROUP) == 0
    assert owner_added == [30]
    assert sorted(tables.read("plates").column("src_offset").to_pylist()) == list(range(30))
    written = with_partitions(PLATE_KIND, plate_rows(20), 4).select(["date", "bucket"]).to_pylist()
    orphans = {f"date={r['date']}/bucket={r['bucket']}" for r in written}  # one file per partition, never committed
    assert sorted("/".join(Path(p).parts[-3:-1]) for p in tables.vacuum("plates")) == sorted(orphans)


def test_retention_deletes_rows_and_compaction_vacuum_reclaim_space(tables: TableCatalog) -> None:
    for first in range(0, 200, 20):  # ten small commits: many small files
        tables.append(PLATE_KIND, plate_rows(20, first_offset=first, days=4), group=GROUP)
    before = tables.stored_bytes("plates")
    files_before = len(tables.files("plates"))
    assert tables.delete_before("plates", "2026-03-03") == 100
    remaining = tables.read("plates")
    assert remaining.num_rows == 100
    assert min(remaining.column("captured_at").to_pylist()).date().isoformat() >= "2026-03-03"
    stats = tables.compact("plates", tables.dates("plates"))
    assert stats["rows_after"] == stats["rows_before"] == 100
    assert len(tables.files("plates")) < files_before
    assert tables.vacuum("plates")
    assert tables.stored_bytes("plates") < before
    assert _second_reader(tables).num_rows == 100


def test_plate_index_on_the_object_store_answers_like_a_full_read(tables: TableCatalog) -> None:
    """Compaction indexes the day in the store (S3 or folder); a query through the index returns exactly the
    rows a full read holds, and one more append (a file the index does not cover) is found too."""
    for first in (0, 40):
        tables.append(PLATE_KIND, plate_rows(40, first_offset=first, days=1), group=GROUP)
    compact_and_index(tables, "plates", tables.dates("plates"))
    tables.append(PLATE_KIND, plate_rows(20, first_offset=80, days=1), group=GROUP)
    plates = TablePlates(tables)
    plates.refresh()
    assert plates.index is not None and plates.index.vocab.num_rows > 0
    rows = tables.read("plates").to_pylist()
    for pattern in ("川A00*", "*X0", "川A0?5*"):
        like = wildcard_to_like(pattern)
        got = plates.search(PlateQuery(
            match="text LIKE ? ESCAPE '\\'", match_params=[like], where="text LIKE ? ESCAPE '\\'", where_params=[like],
            select="read_id", select_params=[], order="captured_at DESC", limit=1000,
            start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 2, tzinfo=UTC)))
        want = sorted((r for r in rows if wildcard_to_regex(pattern).match(r["text"])),
                      key=lambda r: (-r["captured_at"].timestamp(), r["read_id"]))
        assert [g["read_id"] for g in got] == [r["read_id"] for r in want] and want, pattern
        assert plates.last.indexed_dates == 1 and plates.last.scanned_files >= 1  # index + the uncovered append
    plates.close()

