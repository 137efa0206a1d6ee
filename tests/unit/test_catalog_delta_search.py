"""The Delta path answers plate queries like today's Parquet path, after ``migrate`` (folder store)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.catalog.format import PLATE_KIND, segment_key, table_bytes
from pipeline.catalog.migrate import migrate
from pipeline.catalog.table import TableCatalog
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.index import IndexConfig
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from tests.catalog_rows import plate_rows

QUERIES = [("川A005Z0", "exact", 1), ("川A01*", "wildcard", 1), ("*7Y0", "wildcard", 1), ("川A0?2*", "wildcard", 1),
           ("川A100Z0", "fuzzy", 1), ("川A10Z0", "fuzzy", 2)]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> tuple[SearchService, SearchService, object]:
    root = tmp_path_factory.mktemp("store")
    config = with_overrides(TubelineConfig(), {"store.backend": "local", "store.local.root": str(root)})
    store = LocalStore(root)
    rows = plate_rows(600, days=3)
    for date_index in range(3):  # a segment per day, plus a redelivered copy of the first one
        day = rows.filter([r.day == 1 + date_index for r in rows.column("captured_at").to_pylist()])
        date = f"2026-03-0{1 + date_index}"
        for copy in range(2 if date_index == 0 else 1):
            key = segment_key("catalog", "plates", "all", date, 0, copy, 599, f"{date_index}{copy:011d}")
            store.put(key, table_bytes(day))
    cache = Path(tmp_path_factory.mktemp("cache"))
    parquet = SearchService(store, config, settings=IndexConfig(cache_dir=cache / "p"))
    settings = IndexConfig(cache_dir=cache / "d", catalog_format="delta", table_buckets=4)
    report = migrate(store, TableCatalog(config.store, settings), ["plates"])
    delta = SearchService(store, config, settings=settings)
    return parquet, delta, report


def test_migrate_copies_each_row_once(services: tuple[SearchService, SearchService, object]) -> None:
    report = services[2]
    assert report.rows == 600 and report.segments == 4 and report.dates_done == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(("query", "mode", "edits"), QUERIES)
def test_delta_path_matches_parquet_path(services: tuple[SearchService, SearchService, object], query: str,
                                         mode: str, edits: int) -> None:
    parquet, delta, _ = services
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    for kwargs in ({}, {"start": start, "end": end}, {"cameras": ["cam1"]}):
        want = parquet.plates(query, mode=mode, max_edits=edits, limit=50, **kwargs)  # type: ignore[arg-type]
        got = delta.plates(query, mode=mode, max_edits=edits, limit=50, **kwargs)  # type: ignore[arg-type]
        assert want or kwargs, query
        assert [(h.read_id, h.text, h.captured_at) for h in got] == [(h.read_id, h.text, h.captured_at) for h in want]


def test_exact_plate_reads_one_bucket_of_the_window(services: tuple[SearchService, SearchService, object]) -> None:
    _, delta, _ = services
    assert delta.table_plates is not None
    delta.plates("川A005Z0", start=datetime(2026, 3, 2, tzinfo=UTC), end=datetime(2026, 3, 3, tzinfo=UTC))
    assert delta.table_plates.last_files <= 1
    assert delta.plates(PLATE_KIND.name.upper() + "1", limit=5) == []
