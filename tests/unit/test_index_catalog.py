"""The Parquet catalog: rows of every kind, segment keys, the writer's flush rules and compaction's dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.search import synthetic as syn
from pipeline.catalog.format import (
    KIND_BY_TOPIC,
    KINDS,
    PLATE_KIND,
    TRACK_KIND,
    RowMeta,
    build_table,
    parse_segment_key,
    read_table,
    segment_key,
    table_bytes,
)
from pipeline.config.index import IndexConfig
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.cameras import CameraStatus
from schemas.faces import FaceRecord
from schemas.plates import PlateRead
from schemas.tracks import TrackSummary
from workers.index.compact import compact_partition, dedupe
from workers.index.writer import CatalogWriter

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
META = RowMeta(partition=2, offset=7, ingested_at=T0)


@pytest.mark.parametrize("message", [TrackSummary, PlateRead, FaceRecord, Alert, CameraStatus])
def test_every_schema_example_becomes_a_row_and_survives_parquet(message: type) -> None:
    kind = next(k for k in KINDS if k.message is message)
    example = message.example()
    row = kind.to_row(example)
    row.update(ikey=example.idempotency_key(), ingested_at=T0, src_partition=1, src_offset=5)
    table = read_table(table_bytes(build_table(kind, [row])))
    assert table.schema.equals(kind.schema)
    back = table.to_pylist()[0]
    assert back["camera_id"] == example.camera_id
    assert back[kind.time_column] == kind.event_time(example)
    assert back["ikey"] == example.idempotency_key()


def test_topics_map_to_kinds() -> None:
    assert set(KIND_BY_TOPIC) == {
        "tubeline.tracks.v1", "tubeline.plates.v1", "tubeline.faces.v1", "tubeline.alerts.v1",
        "tubeline.camera-status.v1", "tubeline.camera-health.v1",
    }


def test_track_row_keeps_the_largest_box() -> None:
    t = syn.track("cam-1", 1, T0)
    assert TRACK_KIND.to_row(t)["box"] == [700.0, 300.0, 900.0, 490.0]


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("catalog/plates/date=2024-05-01/camera=cam-1/part-p0-000000000000-000000000009-abcdef012345.parquet", True),
        ("catalog/plates/date=2024-05-01/camera=3402000000132:x/part-c-abcdef012345.parquet", True),
        ("catalog/unknown/date=2024-05-01/camera=cam-1/part-c-a.parquet", False),
        ("catalog/plates/date=2024-05-01/camera=cam-1/notes.txt", False),
        ("other/plates/date=2024-05-01/camera=cam-1/part-c-a.parquet", False),
        ("catalog/plates/camera=cam-1/date=2024-05-01/part-c-a.parquet", False),
    ],
)
def test_segment_keys_parse(key: str, ok: bool) -> None:
    ref = parse_segment_key(key, "catalog")
    assert (ref is not None) is ok
    if ref is not None:
        assert ref.kind == "plates" and ref.date == "2024-05-01" and ref.key == key


def test_segment_key_round_trip() -> None:
    key = segment_key("catalog", "faces", "cam-1", "2024-05-01", 3, 10, 20, "0123456789ab")
    ref = parse_segment_key(key, "catalog")
    assert ref is not None and (ref.kind, ref.camera_id, ref.date) == ("faces", "cam-1", "2024-05-01")


def _plates_writer(tmp_path: Path, **settings: object) -> tuple[LocalStore, CatalogWriter, IndexConfig]:
    store = LocalStore(tmp_path / "store")
    cfg = IndexConfig(cache_dir=tmp_path / "cache", **settings)
    return store, CatalogWriter(store, cfg), cfg


def test_writer_splits_by_kind_date_and_camera(tmp_path: Path) -> None:
    store, writer, _ = _plates_writer(tmp_path)
    for i, (cam, day) in enumerate([("cam-1", 0), ("cam-1", 0), ("cam-2", 0), ("cam-1", 1)]):
        t = syn.track(cam, i, T0 + timedelta(days=day))
        writer.add(TRACK_KIND, t, RowMeta(0, i, T0))
        writer.add(PLATE_KIND, syn.plate(t, "川AF058Y"), RowMeta(0, i, T0))
    written = writer.flush()
    refs = sorted((w.ref.kind, w.ref.date, w.ref.camera_id, w.table.num_rows) for w in written)
    assert refs == [
        ("plates", "2024-05-01", "cam-1", 2), ("plates", "2024-05-01", "cam-2", 1), ("plates", "2024-05-02", "cam-1", 1),
        ("tracks", "2024-05-01", "cam-1", 2), ("tracks", "2024-05-01", "cam-2", 1), ("tracks", "2024-05-02", "cam-1", 1),
    ]
    assert len(list(store.list("catalog/"))) == 6
    assert writer.records == 0 and writer.flush() == []


def _catalog_rows(store: LocalStore) -> list[dict]:
    return [row for info in store.list("catalog/") for row in read_table(store.get(info.key)).to_pylist()]


def test_replayed_records_are_not_written_twice(tmp_path: Path) -> None:
    """A redelivery (same writer, or a restarted one reading the partition back) adds no row; a new plate
    revision is a new row."""
    store, writer, cfg = _plates_writer(tmp_path)
    reads = [syn.plate(syn.track("cam-1", i, T0), syn.random_plate(__import__("numpy").random.default_rng(i)))
             for i in range(5)]
    for i, r in enumerate(reads):
        writer.add(PLATE_KIND, r, RowMeta(0, 100 + i, T0))
    assert len(writer.flush()) == 1
    for i, r in enumerate(reads):  # the same batch again (an uncommitted flush replayed)
        writer.add(PLATE_KIND, r, RowMeta(0, 100 + i, T0))
    assert writer.flush() == [] and writer.duplicates_skipped == 5
    restarted = CatalogWriter(store, cfg)
    for i, r in enumerate(reads[:3]):  # replayed at other offsets after a restart
        restarted.add(PLATE_KIND, r, RowMeta(0, 200 + i, T0))
    assert restarted.flush() == [] and restarted.duplicates_skipped == 3
    newer = reads[0].model_copy(update={"revision": reads[0].revision + 1, "votes": reads[0].votes + 1})
    restarted.add(PLATE_KIND, newer, RowMeta(0, 300, T0))
    restarted.add(PLATE_KIND, newer, RowMeta(0, 301, T0))  # and its own redelivery in the same batch
    assert [w.table.num_rows for w in restarted.flush()] == [1]
    rows = _catalog_rows(store)
    assert len(rows) == 6
    assert len({(r["ikey"], r["revision"]) for r in rows}) == 6


def test_identical_batches_would_share_a_segment_key(tmp_path: Path) -> None:
    """Segment keys still come from content: a replay that does get written (another writer's partition
    cache is cold during a rebalance) overwrites the same object instead of adding one."""
    reads = [syn.plate(syn.track("cam-1", i, T0), syn.random_plate(__import__("numpy").random.default_rng(i)))
             for i in range(5)]
    keys = []
    for run in range(2):
        _, writer, _ = _plates_writer(tmp_path / str(run))
        for i, r in enumerate(reads):
            writer.add(PLATE_KIND, r, RowMeta(0, 100 + i, T0))
        keys.append([w.ref.key for w in writer.flush()])
    assert keys[0] == keys[1]


@pytest.mark.parametrize(
    ("settings", "records", "advance", "due"),
    [
        ({"flush_max_records": 3}, 2, 0.0, False),
        ({"flush_max_records": 3}, 3, 0.0, True),
        ({"flush_interval_s": 10.0}, 1, 9.0, False),
        ({"flush_interval_s": 10.0}, 1, 10.0, True),
        ({"flush_max_bytes": 2048}, 2, 0.0, True),
    ],
)
def test_flush_is_due_by_size_bytes_or_age(tmp_path: Path, settings: dict, records: int, advance: float,
                                           due: bool) -> None:
    now = [100.0]
    store = LocalStore(tmp_path / "store")
    writer = CatalogWriter(store, IndexConfig(**settings), monotonic=lambda: now[0])
    for i in range(records):
        writer.add(TRACK_KIND, syn.track("cam-1", i, T0), RowMeta(0, i, T0), size=1024)
    now[0] += advance
    assert writer.due() is due


def test_dedupe_keeps_the_latest_plate_revision_and_one_copy_of_redelivered_records(tmp_path: Path) -> None:
    t = syn.track("cam-1", 1, T0)
    rows = []
    for offset, (text, revision) in enumerate([("川AF058X", 0), ("川AF058Y", 1), ("川AF058X", 0), ("川AF058Y", 1)]):
        row = PLATE_KIND.to_row(syn.plate(t, text, revision=revision))
        row.update(ikey=f"{t.track_id}/plate", ingested_at=T0 + timedelta(seconds=offset), src_partition=0,
                   src_offset=offset)
        rows.append(row)
    rows.insert(0, rows.pop(1))  # revision order is what counts, not arrival order
    out = dedupe(PLATE_KIND, build_table(PLATE_KIND, rows)).to_pylist()
    assert [(r["text"], r["revision"]) for r in out] == [("川AF058Y", 1)]


def test_compaction_merges_a_partition_into_one_deduplicated_segment(tmp_path: Path) -> None:
    store, writer, cfg = _plates_writer(tmp_path)
    tracks = [syn.track("cam-1", i, T0 + timedelta(seconds=i)) for i in range(4)]
    for round_, revision in enumerate([0, 0, 1]):  # the second round is a redelivery
        for i, t in enumerate(tracks):
            writer.add(PLATE_KIND, syn.plate(t, f"川A0000{i}", revision=revision), RowMeta(0, 10 * round_ + i, T0))
        writer.flush()
    before = [i.key for i in store.list("catalog/")]
    assert len(before) == 2  # the redelivered round added no segment
    merged = compact_partition(store, cfg, "plates", "2024-05-01", "cam-1")
    after = [i.key for i in store.list("catalog/")]
    assert after == [merged] and parse_segment_key(merged, "catalog") is not None
    rows = read_table(store.get(merged)).to_pylist()
    assert sorted((r["track_id"], r["revision"]) for r in rows) == [(t.track_id, 1) for t in tracks]
    assert compact_partition(store, cfg, "plates", "2024-05-01", "cam-1") is None  # nothing left to merge
