"""The plate index narrows what a plate query reads, never what it finds (folder store, random data).

Every query is checked against a brute-force answer computed in Python from every row delta-rs reads back
(``levenshtein`` and ``wildcard_to_regex`` of :mod:`pipeline.search.plates`), over a table in which one day is
compacted and indexed, one is indexed again after appends (its vocabulary lags), one got rows
appended after its index was built (a file the index does not cover) and one was never compacted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pipeline.catalog.format import PLATE_KIND
from pipeline.catalog.plate_index import PlateIndex, compact_and_index
from pipeline.catalog.table import RANGE_BUCKET, TableCatalog
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.index import IndexConfig
from pipeline.search.plates import levenshtein, wildcard_to_regex
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
GROUP = "test-index"
CHARS = list("0123456789ABCDXYZ")


def _rows(rng: np.random.Generator, plates: list[str], day: int, n: int, first_offset: int, partition: int) -> pa.Table:
    text = [plates[i] for i in rng.integers(0, len(plates), n)]
    seconds = rng.integers(0, 86_400, n)
    offsets = list(range(first_offset, first_offset + n))
    ids = [f"r{partition}-{o}" for o in offsets]
    at = [DAY0 + timedelta(days=day, seconds=int(s)) for s in seconds]
    return pa.Table.from_pylist([{
        "read_id": i, "track_id": i, "camera_id": f"cam{int(c)}", "captured_at": t, "text": x,
        "char_confidences": [0.9] * len(x), "confidence": 0.9, "box": [0.0, 0.0, 10.0, 5.0], "crop_key": "c",
        "region": "CN", "plate_kind": "blue", "model_id": "m", "votes": 1, "revision": 0, "ikey": f"{i}/plate",
        "ingested_at": t, "src_partition": partition, "src_offset": o,
    } for i, c, t, x, o in zip(ids, rng.integers(0, 5, n), at, text, offsets, strict=True)], schema=PLATE_KIND.schema)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SearchService, TableCatalog, pa.Table]]:
    root = Path(tmp_path_factory.mktemp("store"))
    config = with_overrides(TubelineConfig(), {"store.backend": "local", "store.local.root": str(root)})
    settings = IndexConfig(cache_dir=root / "cache", catalog_format="delta", table_buckets=4, table_row_group_rows=1024)
    tables = TableCatalog(config.store, settings)
    rng = np.random.default_rng(7)
    plates = sorted({"川" + "".join(rng.choice(CHARS, 5)) for _ in range(400)})
    offset = 0

    def append(day: int, n: int, partition: int = 0) -> None:
        nonlocal offset
        tables.append(PLATE_KIND, _rows(rng, plates, day, n, offset, partition), group=GROUP)
        offset += n

    for day in range(4):
        append(day, 1500)
        append(day, 1500, partition=1)
    compact_and_index(tables, "plates", ["2026-03-01", "2026-03-02"])  # indexed, in the vocabulary
    append(1, 200)  # day 2 gets a file its index does not cover
    compact_and_index(tables, "plates", ["2026-03-03"])
    append(2, 300, partition=1)
    PlateIndex(tables).build("2026-03-03")  # compacted file + unsorted appends: an index the vocabulary does not name
    # day 4 (2026-03-04): appends only, never compacted or indexed
    service = SearchService(LocalStore(root), config, settings=settings)
    yield service, tables, tables.read("plates")
    service.close()


def _expected(rows: pa.Table | list[dict[str, Any]], query: str, mode: str, edits: int, start: datetime, end: datetime,
              cameras: list[str] | None) -> list[str]:
    pattern = wildcard_to_regex(query) if mode == "wildcard" else None
    keep = []
    for r in rows.to_pylist() if isinstance(rows, pa.Table) else rows:
        if not start <= r["captured_at"] < end or (cameras is not None and r["camera_id"] not in cameras):
            continue
        text = r["text"]
        d = 0
        if mode == "exact" and text != query:
            continue
        if pattern is not None and not pattern.match(text):
            continue
        if mode == "fuzzy":
            d = levenshtein(text, query)
            if d > edits:
                continue
        keep.append((d, -r["captured_at"].timestamp(), r["read_id"]))
    return [read_id for *_, read_id in sorted(keep)]


def _queries(rows: pa.Table) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(11)
    texts = rows.column("text").to_pylist()
    out: list[tuple[str, str, int]] = []
    for i in rng.integers(0, len(texts), 2):
        t = texts[int(i)]
        out += [(t, "exact", 0), (t[:3] + "*", "wildcard", 0), ("*" + t[2:5] + "?", "wildcard", 0),
                ("?" + t[1:4] + "*", "wildcard", 0), ("*" + t[3:], "wildcard", 0), (t[:-1] + "9", "fuzzy", 1),
                (t[1:], "fuzzy", 2), (t[1:], "fuzzy", 1), ("Z" + t, "fuzzy", 1), (t[:3] + t[4:], "fuzzy", 1),
                (t[:3] + "9" + t[3:], "fuzzy", 1), (t, "fuzzy", 1)]
    out.append(("川ZZZZZ", "exact", 0))  # a plate that never passed
    return out


def test_layout_the_cases_rely_on(setup: tuple[SearchService, TableCatalog, pa.Table]) -> None:
    service, tables, _ = setup
    assert service.table_plates is not None and service.table_plates.index is not None
    service.refresh()
    index = service.table_plates.index
    by_date = {d: tables.files("plates", [d]) for d in tables.dates("plates")}
    assert all(f.bucket == RANGE_BUCKET for f in by_date["2026-03-01"])  # compacted: range-bucketed
    covered = {d: index.cover(d, files) for d, files in by_date.items()}
    assert covered["2026-03-01"][0] and not covered["2026-03-01"][1]
    uncovered = covered["2026-03-02"][1]
    assert covered["2026-03-02"][0] and uncovered and all(f.bucket != RANGE_BUCKET for f in uncovered)  # the append
    assert covered["2026-03-03"][0] and not index.in_vocab(covered["2026-03-03"][0][0])
    assert not covered["2026-03-04"][0]


@pytest.mark.parametrize("window", [(0, 4), (1, 3)])
def test_index_answers_like_a_full_scan(setup: tuple[SearchService, TableCatalog, pa.Table],
                                        window: tuple[int, int]) -> None:
    service, _, rows = setup
    start, end = DAY0 + timedelta(days=window[0]), DAY0 + timedelta(days=window[1])
    checked = 0
    every = rows.to_pylist()
    for query, mode, edits in _queries(rows):
        for cameras in (None, ["cam1", "cam3"]):
            want = _expected(every, query, mode, edits, start, end, cameras)
            for limit in (10_000, 7) if cameras is None else (10_000,):
                got = service.plates(query, mode=mode, max_edits=max(edits, 1) if mode == "fuzzy" else 1,  # type: ignore[arg-type]
                                     cameras=cameras, start=start, end=end, limit=limit)
                assert [h.read_id for h in got] == want[:limit], (query, mode, cameras, limit)
            checked += len(want)
    assert checked > 100  # the queries do find rows


def test_exact_plate_reads_one_row_group_per_indexed_day(setup: tuple[SearchService, TableCatalog, pa.Table]) -> None:
    service, _, rows = setup
    assert service.table_plates is not None
    plate = rows.column("text")[0].as_py()
    service.plates(plate, start=DAY0, end=DAY0 + timedelta(days=1), limit=10_000)
    last = service.table_plates.last
    assert last.indexed_dates == 1 and last.scanned_files == 0 and last.row_groups <= 2


def test_a_stale_index_is_ignored_then_pruned_and_vacuum_keeps_the_index(
        setup: tuple[SearchService, TableCatalog, pa.Table]) -> None:
    service, tables, rows = setup
    assert service.table_plates is not None and service.table_plates.index is not None
    plate = rows.column("text")[0].as_py()
    window = {"start": DAY0, "end": DAY0 + timedelta(days=4)}
    before = [h.read_id for h in service.plates(plate, limit=10_000, **window)]  # type: ignore[arg-type]
    assert before == _expected(rows, plate, "exact", 0, window["start"], window["end"], None)
    deleted = tables.delete_rows("plates", "date = '2026-03-01' AND camera_id = 'cam0'")
    assert deleted > 0
    service.refresh()  # day 1's index now covers a file the log no longer lists
    index = service.table_plates.index
    assert not index.cover("2026-03-01", tables.files("plates", ["2026-03-01"]))[0]
    after = [h.read_id for h in service.plates(plate, limit=10_000, **window)]  # type: ignore[arg-type]
    rows_now = tables.read("plates")
    assert after == _expected(rows_now, plate, "exact", 0, window["start"], window["end"], None) != before
    removed = PlateIndex(tables).prune()
    assert any(name.startswith("date=2026-03-01/") for name in removed)
    tables.vacuum("plates")
    service.refresh()
    assert index.cover("2026-03-02", tables.files("plates", ["2026-03-02"]))[0]  # vacuum left the index alone
    assert [h.read_id for h in service.plates(plate, limit=10_000, **window)] == after  # type: ignore[arg-type]


def test_vocabulary_narrowing_equals_a_pass_over_it(setup: tuple[SearchService, TableCatalog, pa.Table]) -> None:
    """The binary searches of the sorted vocabulary (and of its reversed texts) find exactly the plates a pass
    would: heads and tails of plates present and absent, one character, a province character alone."""
    service, _, _ = setup
    assert service.table_plates is not None and service.table_plates.index is not None
    service.refresh()
    index = service.table_plates.index
    vocab = index.vocab.column("text").to_pylist()
    assert len(vocab) > 300 and vocab == sorted(vocab)
    assert index._reversed is not None  # the vocabulary file carries its reversed texts
    probes = [v[:n] for v in vocab[::37] for n in (1, 3, 6)] + ["川", "川0", "A", "ZZZ", "川ZZZZZZ", "", "9"]
    for head in probes:
        for tail in [v[-n:] for v in vocab[::53] for n in (1, 4)] + ["", "Q", "川"]:
            want = {v for v in vocab if (head and v.startswith(head)) or (tail and v.endswith(tail))}
            starts, ends = ((head,) if head else ()), ((tail,) if tail else ())
            if not starts and not ends:
                continue
            got = index.narrow(starts, ends).to_pylist()
            assert len(got) == len(set(got)) and set(got) == want, (head, tail)
            if tail:
                stored, index._reversed = index._reversed, None  # a vocabulary written before ``backwards``
                assert set(index.narrow(starts, ends).to_pylist()) == want, (head, tail)
                assert index._reversed is not None and index._reversed[1] == stored[1]  # type: ignore[index]
