"""FAISS shards: index-type selection, manifest round trip, exact re-ranking, filters, snapshots and rebuilds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import faiss
import numpy as np
import pytest

from benchmarks.search import synthetic as syn
from pipeline.catalog import shards as shards_module
from pipeline.catalog.format import FACE_KIND, RowMeta, read_table
from pipeline.catalog.shards import (
    Manifest,
    SegmentEntry,
    ShardBuilder,
    ShardError,
    choose_factory,
    model_key,
    model_version,
    nlist_for,
    window_bounds,
    window_of,
)
from pipeline.config.index import IndexConfig
from pipeline.store.local import LocalStore
from workers.index.faces import list_face_segments
from workers.index.writer import CatalogWriter

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
MODEL = "arcface-r50@1"


@pytest.mark.parametrize(
    ("n", "threshold", "large", "factory"),
    [
        (0, 200_000, "ivf", "Flat"),
        (200_000, 200_000, "ivf", "Flat"),
        (200_001, 200_000, "ivf", "IVF512,Flat"),
        (1_000_000, 200_000, "ivf", "IVF1024,Flat"),
        (1_000_000, 200_000, "hnsw", "HNSW32,Flat"),
        (5000, 0, "ivf", "IVF64,Flat"),
        (2047, 0, "hnsw", "Flat"),  # below MIN_ANN_VECTORS an approximate index is never used
        (1_000_000, 100_000, "pq-refine", "PQ64x4fs,RFlat"),  # 128-d: 2 dimensions per 4-bit code
        (100_001, 100_000, "pq-refine", "PQ64x4fs,RFlat"),
        (100_000, 100_000, "pq-refine", "Flat"),
    ],
)
def test_index_type_is_chosen_by_size(n: int, threshold: int, large: str, factory: str) -> None:
    assert choose_factory(n, IndexConfig(flat_max_vectors=threshold, large_index=large)) == factory


@pytest.mark.parametrize(("n", "nlist"), [(1, 16), (100, 16), (10_000, 128), (100_000, 256), (1_000_000, 1024)])
def test_nlist_is_the_power_of_two_nearest_sqrt_n(n: int, nlist: int) -> None:
    assert nlist_for(n) == nlist


def test_manifest_round_trip() -> None:
    m = Manifest(model_id=MODEL, window="2024-05-01", dimension=512, factory="IVF1024,Flat", count=3,
                 model_version="1", params={"nlist": 1024, "nprobe": 32}, time_range=("a", "b"),
                 created_at="2024-05-01T00:00:00Z", updated_at="2024-05-01T01:00:00Z", shard_sha256="ab" * 32,
                 shard_bytes=10, segments=[SegmentEntry("k1", "e1", 0, 2), SegmentEntry("k2", "e2", 2, 1)])
    again = Manifest.from_json(m.to_json())
    assert again == m
    assert again.id_range == (0, 3)
    doc = m.to_json().decode()
    for word in ("factory", "model_id", "model_version", "dimension", "count", "id_range", "created_at"):
        assert f'"{word}"' in doc


def test_manifest_of_another_version_is_refused() -> None:
    with pytest.raises(ShardError, match="version"):
        Manifest.from_json(b'{"version": 99}')


@pytest.mark.parametrize(("model", "key"), [(MODEL, MODEL), ("org/face+1", None)])
def test_model_key_is_a_safe_path_segment(model: str, key: str | None) -> None:
    got = model_key(model)
    assert "/" not in got
    if key is not None:
        assert got == key
    else:
        assert got != model_key("org_face+1")  # sanitised names do not collide


def test_model_version_and_windows() -> None:
    assert model_version("arcface-r50@2") == "2" and model_version("dlib") == ""
    at = datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC)
    assert window_of(at, "day") == "2024-05-01" and window_of(at, "hour") == "2024-05-01T23"
    assert window_bounds("2024-05-01") == (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC))
    assert window_bounds("2024-05-01T23")[1] == datetime(2024, 5, 2, tzinfo=UTC)


# -- shards over a real catalog in a local store -------------------------------------------------
def _write_faces(store: LocalStore, settings: IndexConfig, vectors: np.ndarray, cameras: list[str],
                 offset: int = 0, start: int = 0, spacing: float = 10.0, copies: bool = False) -> None:
    writer = CatalogWriter(store, settings)
    if copies:  # write rows the catalog already holds, as two indexers may during a rebalance
        writer.known = lambda *part: set()  # type: ignore[method-assign]
    for i, v in enumerate(vectors):
        cam = cameras[i % len(cameras)]
        person = syn.track(cam, start + i, T0 + timedelta(seconds=spacing * (start + i)), class_name="person",
                           vehicle_type=None)
        writer.add(FACE_KIND, syn.face(person, 0, v), RowMeta(0, offset + i, T0))
    writer.flush()


@pytest.fixture
def catalog(tmp_path: Path) -> tuple[LocalStore, IndexConfig, np.ndarray]:
    store = LocalStore(tmp_path / "store")
    settings = IndexConfig(cache_dir=tmp_path / "cache", flat_max_vectors=0, large_index="ivf", ivf_nprobe=64)
    rng = np.random.default_rng(1)
    vectors = syn.faces_of(rng, syn.identities(rng, 300, 64), rng.integers(0, 300, size=3000))
    _write_faces(store, settings, vectors, ["cam-1", "cam-2", "cam-3"])
    return store, settings, vectors


def _builder(store: LocalStore, settings: IndexConfig) -> ShardBuilder:
    return ShardBuilder(store, settings, lambda key, etag, columns: read_table(store.get(key), columns))


def test_rebuild_snapshot_and_load_give_the_same_answers(catalog) -> None:  # noqa: ANN001
    store, settings, vectors = catalog
    segments = list_face_segments(store, settings, "2024-05-01")
    builder = _builder(store, settings)
    shard, rebuilt = builder.open(MODEL, "2024-05-01", segments)
    assert rebuilt and shard.count == len(vectors)
    assert shard.manifest.factory == "IVF64,Flat"  # 3000 vectors above a threshold of 0
    builder.snapshot(shard)
    again, rebuilt = builder.open(MODEL, "2024-05-01", segments)
    assert not rebuilt and again.count == shard.count
    q = vectors[17]
    ids, scores = shard.search(q, 5, settings)
    ids2, scores2 = again.search(q, 5, settings)
    assert ids.tolist() == ids2.tolist() and np.allclose(scores, scores2)
    assert again.meta.take(ids2)["face_id"].to_pylist() == shard.meta.take(ids)["face_id"].to_pylist()


def test_search_is_exactly_reranked_and_filtered(catalog) -> None:  # noqa: ANN001
    store, settings, vectors = catalog
    shard, _ = _builder(store, settings).open(MODEL, "2024-05-01", list_face_segments(store, settings, "2024-05-01"))
    q = vectors[42]
    ids, scores = shard.search(q, 10, settings)
    truth = vectors @ q  # row order = id order: one segment per camera, written in key order
    meta_ids = shard.meta["face_id"].to_pylist()
    order = {fid: i for i, fid in enumerate(meta_ids)}
    assert ids[0] == order[f"cam-1:s0:{42}.face.0"] and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(scores) <= 1e-7)
    exact = np.sort(truth)[::-1][:10]
    assert np.allclose(np.sort(scores)[::-1], exact, atol=1e-5)  # nprobe 64 of 64 lists: exact
    mask = shard.filter_mask(["cam-2"], T0 + timedelta(seconds=1000), None)
    ids, _ = shard.search(q, 10, settings, mask)
    cams = shard.meta.take(ids)["camera_id"].to_pylist()
    times = shard.meta.take(ids)["captured_at"].to_pylist()
    assert ids.size == 10 and set(cams) == {"cam-2"}
    assert all(t >= T0 + timedelta(seconds=1000) for t in times)
    assert shard.search(q, 10, settings, shard.filter_mask(["cam-9"], None, None))[0].size == 0


def test_selector_search_on_a_large_filtered_set(catalog) -> None:  # noqa: ANN001
    store, settings, vectors = catalog
    shard, _ = _builder(store, settings).open(MODEL, "2024-05-01", list_face_segments(store, settings, "2024-05-01"))
    mask = shard.filter_mask(["cam-1", "cam-3"], None, None)  # 2000 allowed, above the brute-force cut-off
    ids, _ = shard.search(vectors[5], 2, settings, mask)  # wanted 8 → brute force below max(32, 4096)
    assert set(shard.meta.take(ids)["camera_id"].to_pylist()) <= {"cam-1", "cam-3"}
    small = IndexConfig(flat_max_vectors=0, large_index="ivf", rerank_factor=1, ivf_nprobe=64)
    mask_all = np.ones(shard.count, dtype=bool)
    mask_all[:10] = False
    ids, scores = shard.search(vectors[5], 3, small, mask_all)
    assert ids.size == 3 and not set(ids.tolist()) & set(range(10))


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate", "segment_gone"])
def test_lost_or_corrupt_shard_is_rebuilt_from_the_catalog(catalog, damage: str) -> None:  # noqa: ANN001
    store, settings, vectors = catalog
    segments = list_face_segments(store, settings, "2024-05-01")
    builder = _builder(store, settings)
    shard, _ = builder.open(MODEL, "2024-05-01", segments)
    builder.snapshot(shard)
    shard_key, _ = builder.keys(MODEL, "2024-05-01")
    if damage == "delete":
        store.delete(shard_key)
    elif damage == "garbage":
        store.put(shard_key, b"not a faiss index")
    elif damage == "truncate":
        store.put(shard_key, store.get(shard_key)[:1000])
    else:
        gone = sorted(segments)[0]
        store.delete(gone)
        segments = list_face_segments(store, settings, "2024-05-01")
    again, rebuilt = builder.open(MODEL, "2024-05-01", segments)
    assert rebuilt
    expected = shard.count if damage != "segment_gone" else 2000
    assert again.count == expected
    ids, _ = again.search(vectors[1], 1, settings)
    assert again.meta.take(ids)["face_id"].to_pylist() == ["cam-2:s0:1.face.0"]


@pytest.mark.parametrize("tamper", ["other_index", "other_index_same_size", "manifest_digest_only", "size_only"])
def test_a_tampered_shard_is_refused_before_faiss_parses_it_and_rebuilt(
    catalog, monkeypatch: pytest.MonkeyPatch, tamper: str,  # noqa: ANN001
) -> None:
    """A well-formed FAISS file that is not the one its manifest was written for (an attacker's, or a stale one)
    never reaches FAISS's parser: the size is compared before it is fetched, the SHA-256 before it is parsed.
    The shard is then rebuilt from the Parquet truth, answers unchanged, and the refusal is counted."""
    store, settings, vectors = catalog
    segments = list_face_segments(store, settings, "2024-05-01")
    builder = _builder(store, settings)
    shard, _ = builder.open(MODEL, "2024-05-01", segments)
    builder.snapshot(shard)
    shard_key, manifest_key = builder.keys(MODEL, "2024-05-01")
    original = store.get(shard_key)
    rng = np.random.default_rng(7)
    other = faiss.serialize_index(shards_module.build_index(
        np.ascontiguousarray(rng.normal(size=(len(vectors) + 5, 64)), dtype=np.float32), "Flat", settings)).tobytes()
    if tamper == "other_index":
        store.put(shard_key, other)
    elif tamper == "other_index_same_size":  # same length, other vectors: only the digest can tell
        flipped = bytearray(original)
        flipped[-64:] = bytes(64)
        store.put(shard_key, bytes(flipped))
    elif tamper == "manifest_digest_only":
        doc = Manifest.from_json(store.get(manifest_key))
        doc.shard_sha256 = "0" * 64
        store.put(manifest_key, doc.to_json())
    else:
        doc = Manifest.from_json(store.get(manifest_key))
        doc.shard_bytes += 1
        store.put(manifest_key, doc.to_json())
    parsed: list[int] = []
    real = faiss.deserialize_index
    monkeypatch.setattr(faiss, "deserialize_index", lambda blob: parsed.append(len(blob)) or real(blob))
    again, rebuilt = builder.open(MODEL, "2024-05-01", segments)
    assert rebuilt and builder.refused == 1
    assert parsed == [], "a shard file that does not match its manifest was handed to FAISS"
    assert again.count == shard.count
    ids, _ = again.search(vectors[1], 1, settings)
    assert again.meta.take(ids)["face_id"].to_pylist() == ["cam-2:s0:1.face.0"]
    builder.snapshot(again)  # what the indexer does next: the repaired snapshot loads (and is parsed) again
    _, rebuilt = builder.open(MODEL, "2024-05-01", segments)
    assert not rebuilt and builder.refused == 1 and len(parsed) == 1


MANIFEST_EDITS = {
    "a string count": ("count", "3"),
    "a negative count": ("count", -1),
    "a digest that is not hex": ("shard_sha256", "zz" * 32),
    "no digest": ("shard_sha256", ""),
    "segments not a list": ("segments", {"k": 1}),
    "a segment count as text": ("segments", [{"key": "k", "etag": "e", "first_id": 0, "count": "2"}]),
    "zero dimension": ("dimension", 0),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_a_malformed_manifest_is_refused(case: str) -> None:
    field, value = MANIFEST_EDITS[case]
    m = Manifest(model_id=MODEL, window="2024-05-01", dimension=64, factory="Flat", count=2,
                 shard_sha256="ab" * 32, shard_bytes=10, segments=[SegmentEntry("k", "e", 0, 2)])
    doc = json.loads(m.to_json())
    doc[field] = value
    with pytest.raises(ShardError):
        Manifest.from_json(json.dumps(doc).encode())
    for raw in (b"[]", b"\x80\x05.", b"{", b" " * (shards_module.MAX_MANIFEST_BYTES + 1)):
        with pytest.raises(ShardError):
            Manifest.from_json(raw)


def test_catch_up_adds_new_segments_and_skips_duplicate_faces(catalog) -> None:  # noqa: ANN001
    store, settings, vectors = catalog
    builder = _builder(store, settings)
    shard, _ = builder.open(MODEL, "2024-05-01", list_face_segments(store, settings, "2024-05-01"))
    builder.snapshot(shard)
    _write_faces(store, settings, vectors[:30], ["cam-1", "cam-2", "cam-3"], offset=10_000, copies=True)
    rng = np.random.default_rng(9)
    extra = syn.faces_of(rng, syn.identities(rng, 5, 64), np.arange(5))
    _write_faces(store, settings, extra, ["cam-4"], offset=20_000, start=5000)
    again, rebuilt = builder.open(MODEL, "2024-05-01", list_face_segments(store, settings, "2024-05-01"))
    assert not rebuilt
    assert again.count == len(vectors) + 5
    assert len(again.manifest.segments) == 3 + 3 + 1
    ids, scores = again.search(extra[2], 1, settings)
    assert again.meta.take(ids)["face_id"].to_pylist() == ["cam-4:s0:5002.face.0"]


def test_upgrade_from_flat_keeps_ids(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    settings = IndexConfig(cache_dir=tmp_path / "cache", flat_max_vectors=2500, large_index="hnsw")
    rng = np.random.default_rng(4)
    vectors = syn.faces_of(rng, syn.identities(rng, 100, 32), rng.integers(0, 100, size=2400))
    _write_faces(store, settings, vectors, ["cam-1"])
    builder = _builder(store, settings)
    shard, _ = builder.open(MODEL, "2024-05-01", list_face_segments(store, settings, "2024-05-01"))
    assert shard.manifest.factory == "Flat" and isinstance(shard.index, faiss.IndexFlat)
    before = shard.search(vectors[7], 3, settings)[0].tolist()
    more = syn.faces_of(rng, syn.identities(rng, 10, 32), rng.integers(0, 10, size=200))
    _write_faces(store, settings, more, ["cam-1"], offset=5000, start=5000)
    builder.catch_up(shard, list_face_segments(store, settings, "2024-05-01"))
    assert shard.manifest.factory == "HNSW32,Flat" and shard.count == 2600
    assert shard.search(vectors[7], 3, settings)[0].tolist() == before


@pytest.mark.parametrize("large", ["ivf", "hnsw"])
def test_filtered_search_for_each_large_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large: str) -> None:
    store = LocalStore(tmp_path / "store")
    settings = IndexConfig(cache_dir=tmp_path / "cache", flat_max_vectors=0, large_index=large, rerank_factor=1)
    rng = np.random.default_rng(2)
    vectors = syn.faces_of(rng, syn.identities(rng, 2000, 32), rng.integers(0, 2000, size=10_000))
    _write_faces(store, settings, vectors, ["cam-1", "cam-2"], spacing=1.0)
    shard, _ = _builder(store, settings).open(MODEL, "2024-05-01", list_face_segments(store, settings, "2024-05-01"))
    assert shard.manifest.factory.startswith("IVF" if large == "ivf" else "HNSW")
    mask = shard.filter_mask(["cam-2"], None, None)
    assert mask is not None and mask.sum() == 5000  # above the 4096 cut-off for small filtered sets
    for exact_subset_max in (0, 32768):  # 0: through the FAISS selector; else scored exactly
        monkeypatch.setattr(shards_module, "EXACT_SUBSET_MAX", exact_subset_max)
        for i in (1, 3, 5):  # faces of cam-2 (odd rows); each must find itself, and nothing from cam-1
            ids, scores = shard.search(vectors[i], 10, settings, mask)
            meta = shard.meta.take(ids)
            assert set(meta["camera_id"].to_pylist()) == {"cam-2"}
            assert meta["face_id"][0].as_py() == f"cam-2:s0:{i}.face.0" and scores[0] == pytest.approx(1.0, abs=1e-5)
