"""``tubeline catalog maintain`` over Delta tables the indexer filled with small flushes (in-memory bus, local
folder): each closed day of every kind is compacted once (plates: range-partitioned, indexed, in the
vocabulary), the open day is left as the indexer wrote it, nothing is lost or duplicated, search answers the same
before and after, a second run does nothing, and a compacted day that lost its index is only re-indexed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
from click.testing import CliRunner
from pyarrow.fs import FileSelector

from pipeline.bus.memory import MemoryBus
from pipeline.catalog.format import KINDS
from pipeline.catalog.maintain import closed_dates, maintain, needs_compaction
from pipeline.catalog.plate_index import PlateIndex
from pipeline.catalog.table import RANGE_BUCKET, TableCatalog
from pipeline.config import TubelineConfig, with_overrides
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from tests.flow.test_index_delta_flow import PLATE, T0, index, publish, scene
from workers.index.worker import IndexWorker

DAY1, DAY2 = T0.date().isoformat(), (T0 + timedelta(days=1)).date().isoformat()


def _filled(tmp: Path) -> tuple[TubelineConfig, TableCatalog]:
    config = with_overrides(TubelineConfig(), {
        "runtime.poll_timeout_s": 0.02, "store.backend": "local", "store.local.root": str(tmp / "store"),
        "index.flush_max_records": 7, "index.flush_interval_s": 0.05, "index.compact_after_parts": 0,
        "index.table_buckets": 2, "index.catalog_format": "delta", "index.cache_dir": str(tmp / "cache")})
    store = LocalStore(tmp / "store")
    bus = MemoryBus(default_partitions=3)
    bus.ensure_topics(IndexWorker(config, bus=bus, store=store).topic_specs())
    messages = scene()
    publish(bus, messages)
    index(config, bus, store, len(messages))
    return config, TableCatalog(config.store, config.index)


def _answers(config: TubelineConfig) -> tuple[object, ...]:
    search = SearchService(LocalStore(Path(config.store.local.root)), config)
    try:
        return (search.plates(PLATE, limit=1000), search.plates("川A*", mode="wildcard", limit=1000),
                search.plates(PLATE[:-1] + "Z", mode="fuzzy", limit=1000), search.vehicles(limit=1000),
                search.alerts(), search.tracks(start=T0 - timedelta(days=1), end=T0 + timedelta(days=2)))
    finally:
        search.close()


def test_closed_dates() -> None:
    now = T0.replace(hour=1, minute=30) + timedelta(days=1)  # 01:30 the next day
    assert closed_dates([DAY1, DAY2], now, 2.0) == []  # the grace period is not over
    assert closed_dates([DAY1, DAY2], now + timedelta(hours=1), 2.0) == [DAY1]
    assert closed_dates([DAY1, DAY2], now + timedelta(days=1, hours=1), 2.0) == [DAY1, DAY2]


def test_maintenance_compacts_each_closed_day_once_and_keeps_every_row(tmp_path: Path) -> None:
    config, tables = _filled(tmp_path)
    kinds = [k.name for k in KINDS if tables.files(k.name)]
    assert {"tracks", "plates", "faces", "alerts"} <= set(kinds)
    before = {k: tables.read(k) for k in kinds}
    files_before = {k: tables.files(k) for k in kinds}
    assert any(needs_compaction(k, [f for f in files_before[k] if f.date == DAY1]) for k in kinds)  # small flushes
    answers = _answers(config)

    now = T0.replace(hour=12) + timedelta(days=1)  # DAY1 closed, DAY2 still open
    lines: list[str] = []
    report = maintain(tables, now=now, vacuum_retain_hours=0, open_day_files=0, progress=lines.append)
    assert report.ok, report.failed
    assert set(report.compacted) == {k for k in kinds if needs_compaction(k, [f for f in files_before[k] if f.date == DAY1])}
    assert all(dates == [DAY1] for dates in report.compacted.values())
    assert any("compacting" in line for line in lines)
    for kind in kinds:
        after = tables.files(kind)
        assert not needs_compaction(kind, [f for f in after if f.date == DAY1]), kind
        assert sorted(f.path for f in after if f.date == DAY2) == sorted(f.path for f in files_before[kind]
                                                                         if f.date == DAY2), kind  # open day untouched
        rows = tables.read(kind)
        assert rows.num_rows == before[kind].num_rows, kind  # the indexer wrote each row once: nothing dropped
        assert sorted(rows.column("ikey").to_pylist()) == sorted(before[kind].column("ikey").to_pylist()), kind
    plates = tables.files("plates", [DAY1])
    assert plates and all(f.bucket == RANGE_BUCKET for f in plates)
    index = PlateIndex(tables)
    index.refresh()
    days, uncovered = index.cover(DAY1, plates)
    assert days and not uncovered and all(index.in_vocab(d) for d in days)
    assert pc.sum(pc.equal(index.vocab.column("text"), PLATE)).as_py() == 1
    assert report.vacuumed and sum(report.vacuumed.values()) > 0  # the replaced small files are gone
    assert _answers(config) == answers  # search cannot tell

    again = maintain(tables, now=now, vacuum_retain_hours=0, open_day_files=0)
    assert again.ok and not again.compacted and not again.indexed and not again.vacuumed

    # a compacted day whose index was deleted (derived data): indexed again, not rewritten
    fs = tables.fs
    for info in fs.get_file_info(FileSelector(tables.fs_path("_index", "plates"), recursive=True)):
        if info.is_file:
            fs.delete_file(info.path)
    rebuilt = maintain(tables, now=now, vacuum_retain_hours=0, open_day_files=0)
    assert rebuilt.ok and rebuilt.indexed == [DAY1] and not rebuilt.compacted
    assert _answers(config) == answers


def test_the_open_day_is_indexed_over_its_files_so_far_and_answers_the_same(tmp_path: Path) -> None:
    config, tables = _filled(tmp_path)
    answers = _answers(config)
    now = T0.replace(hour=12) + timedelta(days=1)  # DAY2 is open
    day2 = tables.files("plates", [DAY2])
    assert len(day2) >= 2 and needs_compaction("plates", day2)  # the indexer's small flushes
    assert DAY2 not in maintain(tables, now=now, open_day_files=len(day2) + 1).indexed  # too few uncovered yet
    report = maintain(tables, now=now, open_day_files=2)
    assert report.ok and DAY2 in report.indexed and DAY2 not in report.compacted.get("plates", [])
    assert [f.path for f in tables.files("plates", [DAY2])] == [f.path for f in day2]  # indexed, not rewritten
    index = PlateIndex(tables)
    index.refresh()
    days, uncovered = index.cover(DAY2, day2)
    assert days and not uncovered and all(index.in_vocab(d) for d in days)
    assert _answers(config) == answers
    search = SearchService(LocalStore(Path(config.store.local.root)), config)
    try:
        assert search.table_plates is not None
        assert len(search.plates(PLATE, start=T0 + timedelta(hours=3), end=T0 + timedelta(days=1), limit=100)) == 3
        assert search.table_plates.last.indexed_dates == 1 and search.table_plates.last.scanned_files == 0
    finally:
        search.close()
    assert DAY2 not in maintain(tables, now=now, open_day_files=2).indexed  # nothing new: not again


def test_the_cli_runs_one_round_and_reports(tmp_path: Path) -> None:
    from workers.cli import main

    config, tables = _filled(tmp_path)
    settings = tmp_path / "tubeline.yaml"
    settings.write_text(
        f"store: {{backend: local, local: {{root: '{config.store.local.root}'}}}}\n"
        f"index: {{catalog_format: delta, table_buckets: 2, cache_dir: '{tmp_path / 'c2'}'}}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(settings), "catalog", "maintain", "--closed-after-hours", "0"])
    assert result.exit_code == 0, result.output
    assert "compacted" in result.output and "0 failed" in result.output
    for kind in ("tracks", "plates"):  # both days are closed by now
        assert not needs_compaction(kind, tables.files(kind, [DAY1]))
        assert not needs_compaction(kind, tables.files(kind, [DAY2]))
