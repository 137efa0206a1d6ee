"""The indexer over the in-memory bus and a local store, then SearchService on what it wrote.

Covers: every kind is catalogued and found; a bad message is dead-lettered and committed; offsets
are committed only after the flush; a crash before the flush or between the write and the commit
replays without duplicate rows; a deleted or corrupted FAISS shard is rebuilt from Parquet with
the same answers (in memory: the query layer never writes snapshots); time-based flushes; compaction;
shard snapshots with their manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.search import synthetic as syn
from pipeline.bus.base import dead_letter_topic
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.index import IndexConfig
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from schemas.common import WireMessage
from schemas.topics import ALERTS, CAMERA_STATUS, FACES, PLATES, TRACKS
from tests.contract.test_bus_contract import drain
from workers.index.worker import IndexWorker

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
MODEL = "arcface-r50@1"
PLATE = "川AF058Y"
CONFIG = TubelineConfig.model_validate({"runtime": {"poll_timeout_s": 0.05}})
CAMERAS = ("cam-1", "cam-2", "cam-3")


@dataclass
class Scene:
    messages: list[tuple[str, WireMessage]]
    people: np.ndarray

    @property
    def count(self) -> int:
        return len(self.messages)


def make_scene(seed: int = 5) -> Scene:
    """Three cameras, each: cars with plates (one of them PLATE), people with faces, an alert, a status."""
    rng = np.random.default_rng(seed)
    people = syn.identities(rng, 8, 128)
    messages: list[tuple[str, WireMessage]] = []
    for c, cam in enumerate(CAMERAS):
        messages.append((CAMERA_STATUS.name, syn.status(cam, T0, "online")))
        for i in range(6):
            at = T0 + timedelta(minutes=10 * c + i)
            car = syn.track(cam, i, at, colour=("white", "red")[i % 2], vehicle_type=("car", "van")[i % 2])
            messages += [(TRACKS.name, car), (PLATES.name, syn.plate(car, PLATE if i == 2 else syn.random_plate(rng)))]
            walker = syn.track(cam, 100 + i, at, class_name="person", vehicle_type=None)
            messages.append((TRACKS.name, walker))
            person = i % len(people) if i else 7  # person 7 is on every camera once
            for seq in range(2):
                v = syn.faces_of(rng, people, np.array([person]))[0]
                messages.append((FACES.name, syn.face(walker, seq, v, seconds=1 + seq)))
        messages.append((ALERTS.name, syn.alert(cam, 1, T0 + timedelta(minutes=10 * c, seconds=30))))
    return Scene(messages, people)


def publish(bus: MemoryBus, messages: list[tuple[str, WireMessage]], extra: list[tuple[str, bytes]] = ()) -> None:
    with bus.producer() as producer:
        for topic, message in messages:
            producer.send(topic, message.to_json(), key=message.camera_id)  # type: ignore[attr-defined]
        for topic, raw in extra:
            producer.send(topic, raw, key="cam-1")
        producer.flush()


def run(worker: IndexWorker, until: int, max_steps: int = 200) -> None:
    """Step the worker until ``until`` messages are committed (or fail)."""
    for _ in range(max_steps):
        if worker.processed >= until:
            return
        worker.step()
    pytest.fail(f"only {worker.processed} of {until} messages committed")


@pytest.fixture
def env(tmp_path: Path) -> tuple[MemoryBus, LocalStore, IndexConfig]:
    settings = IndexConfig(cache_dir=tmp_path / "cache", flush_max_records=40, flush_interval_s=0.2,
                           compact_after_parts=0)
    return MemoryBus(default_partitions=3), LocalStore(tmp_path / "store"), settings


def face_ids(hits: list) -> list[str]:
    return [h.face_id for h in hits]


def test_indexer_catalogues_every_kind_and_search_finds_it(env) -> None:  # noqa: ANN001
    bus, store, settings = env
    scene = make_scene()
    publish(bus, scene.messages, [(PLATES.name, b"{not json"), (FACES.name, b'{"type": "face"}')])
    worker = IndexWorker(CONFIG, bus=bus, store=store, settings=settings)
    worker.setup()
    run(worker, scene.count + 2)
    worker.drain()
    worker.teardown()
    assert worker.dead_letter.count == 2
    with bus.consumer([dead_letter_topic(PLATES.name), dead_letter_topic(FACES.name)], "check") as c:
        assert sorted(m.value for m in drain(c, 0.2)) == [b'{"type": "face"}', b"{not json"]

    search = SearchService(store, CONFIG, settings=settings)
    assert [h.camera_id for h in search.plates(PLATE)] == ["cam-3", "cam-2", "cam-1"]
    assert {h.camera_id for h in search.plates("川A*58?", mode="wildcard")} == set(CAMERAS)
    assert all(h.text == PLATE for h in search.plates("川AF05BY", mode="fuzzy"))
    assert len(search.vehicles()) == 18 and len(search.vehicles(vehicle_type="van", colour="red")) == 9
    assert len(search.alerts()) == 3
    assert {c.status for c in search.camera_status()} == {"online"}
    hits = search.faces(scene.people[7], model_id=MODEL, k=6)
    assert {h.track_id.split(":")[-1] for h in hits} == {"100"}  # person 7: the first walker of each camera
    assert len(search.face_trajectory(scene.people[7], model_id=MODEL, threshold=0.6)) == 3
    trajectory = search.plate_trajectory(PLATE)
    assert [s.camera_id for s in trajectory] == list(CAMERAS)
    search.close()


def test_offsets_are_committed_only_after_the_flush(env) -> None:  # noqa: ANN001
    bus, store, settings = env
    now = [1000.0]
    settings = settings.model_copy(update={"flush_max_records": 10_000, "flush_interval_s": 30.0})
    scene = make_scene()
    publish(bus, scene.messages)
    worker = IndexWorker(CONFIG, bus=bus, store=store, settings=settings, monotonic=lambda: now[0])
    worker.setup()
    for _ in range(5):
        worker.step()
    assert worker.writer.records == scene.count and worker.processed == 0
    assert not list(store.list("catalog/"))
    assert all(worker.consumer.committed(tp) in (None, 0) for tp in worker.consumer.assignment())
    now[0] += 30.0
    worker.step()
    assert worker.processed == scene.count and worker.writer.records == 0
    committed = sum(worker.consumer.committed(tp) or 0 for tp in worker.consumer.assignment())
    assert committed == scene.count
    assert list(store.list("catalog/"))
    worker.teardown()


def _search_snapshot(store: LocalStore, settings: IndexConfig, people: np.ndarray) -> tuple:
    search = SearchService(store, CONFIG, settings=settings)
    try:
        return (
            [h.read_id for h in search.plates("?*", mode="wildcard", limit=1000)],
            [h.sighting_id for h in search.vehicles(limit=1000)],
            [a.alert_id for a in search.alerts()],
            [face_ids(search.faces(p, model_id=MODEL, k=50)) for p in people],
        )
    finally:
        search.close()


def _raw_rows(store: LocalStore, settings: IndexConfig) -> dict[str, list[str]]:
    """Every catalog row's idempotency key per kind, duplicates included (sorted)."""
    raw = SearchService(store, CONFIG, settings=settings)
    raw.refresh()
    try:
        return {t: sorted(r[0] for r in raw.catalog.cursor().execute(f"SELECT ikey FROM {t}").fetchall())
                for t in ("plates", "tracks", "faces", "alerts")}
    finally:
        raw.close()


def test_crash_before_or_after_the_write_replays_without_duplicates(env, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store, settings = env
    scene = make_scene()
    publish(bus, scene.messages)
    # 1. Crash with records buffered: nothing was written or committed.
    first = IndexWorker(CONFIG, bus=bus, store=store, settings=settings.model_copy(update={"flush_max_records": 10_000,
                                                                                          "flush_interval_s": 3600}))
    first.setup()
    for _ in range(3):
        first.step()
    assert first.writer.records > 0 and first.processed == 0
    first.consumer.close()  # dies: no flush, no commit
    # 2. Crash after the segments were written, before the commit.
    second = IndexWorker(CONFIG, bus=bus, store=store, settings=settings)
    second.setup()

    def crash(messages: object = None) -> None:
        msg = "killed between the write and the commit"
        raise RuntimeError(msg)

    second.consumer.commit = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        run(second, scene.count)
    second.consumer.close()
    written_once = len(list(store.list("catalog/")))
    assert written_once > 0
    # 3. A healthy worker replays everything, in other batches (so other segment keys).
    third = IndexWorker(CONFIG, bus=bus, store=store, settings=settings.model_copy(update={"flush_max_records": 25}))
    third.setup()
    run(third, scene.count)
    third.drain()
    third.teardown()
    clean_store = LocalStore(tmp_path / "clean")
    clean_bus = MemoryBus(default_partitions=3)
    publish(clean_bus, scene.messages)
    once = IndexWorker(CONFIG, bus=clean_bus, store=clean_store, settings=settings)
    once.setup()
    run(once, scene.count)
    once.drain()
    once.teardown()
    # The replay wrote no row twice: the raw catalog holds exactly what a clean run wrote.
    assert _raw_rows(store, settings) == _raw_rows(clean_store, settings.model_copy(update={"cache_dir": tmp_path / "c3"}))
    replayed = _search_snapshot(store, settings, scene.people)
    assert replayed == _search_snapshot(clean_store, settings.model_copy(update={"cache_dir": tmp_path / "c2"}),
                                        scene.people)
    assert len(replayed[0]) == 18 and len(replayed[1]) == 18 and len(replayed[2]) == 3


@pytest.mark.parametrize("damage", ["delete", "corrupt", "manifest"])
def test_lost_face_shard_is_rebuilt_from_parquet_with_the_same_results(env, damage: str) -> None:  # noqa: ANN001
    bus, store, settings = env
    scene = make_scene()
    publish(bus, scene.messages)
    worker = IndexWorker(CONFIG, bus=bus, store=store, settings=settings)
    worker.setup()
    run(worker, scene.count)
    worker.drain()
    worker.teardown()
    shard_key = f"index/faces/{MODEL}/2024-05-01/shard.faiss"
    manifest_key = f"index/faces/{MODEL}/2024-05-01/manifest.json"
    manifest = json.loads(store.get(manifest_key))
    assert manifest["count"] == 36 and manifest["factory"] == "Flat" and manifest["dimension"] == 128
    assert manifest["model_id"] == MODEL and manifest["model_version"] == "1" and manifest["id_range"] == [0, 36]
    assert sum(s["count"] for s in manifest["segments"]) == 36 and manifest["created_at"]

    def answers(svc: SearchService) -> list:
        return [[(h.face_id, round(h.score, 5)) for h in svc.faces(p, model_id=MODEL, k=5)] for p in scene.people]

    before_service = SearchService(store, CONFIG, settings=settings)
    before = answers(before_service)
    assert before_service.face_index.rebuilt == 0
    if damage == "delete":
        store.delete(shard_key)
    elif damage == "corrupt":
        blob = bytearray(store.get(shard_key))
        blob[len(blob) // 2] ^= 0xFF
        store.put(shard_key, bytes(blob))
    else:
        store.put(manifest_key, b"{broken")
    damaged = {key: store.get(key) if store.exists(key) else None for key in (shard_key, manifest_key)}
    after_service = SearchService(store, CONFIG, settings=settings)
    assert answers(after_service) == before
    assert after_service.face_index.rebuilt == 1
    assert after_service.face_index.builder.refused == (damage != "delete")
    # the query layer (the API) rebuilt in memory and wrote nothing: only the indexer writes index/
    assert {key: store.get(key) if store.exists(key) else None for key in damaged} == damaged
    third = SearchService(store, CONFIG, settings=settings)
    assert answers(third) == before and third.face_index.rebuilt == 1


def test_compaction_keeps_results_and_shrinks_the_catalog(env) -> None:  # noqa: ANN001
    bus, store, settings = env
    settings = settings.model_copy(update={"flush_max_records": 5, "compact_after_parts": 3})
    scene = make_scene()
    publish(bus, scene.messages)
    worker = IndexWorker(CONFIG, bus=bus, store=store, settings=settings)
    worker.setup()
    run(worker, scene.count, max_steps=2000)
    worker.drain()
    worker.teardown()
    assert worker.compactions > 0
    keys = [i.key for i in store.list("catalog/")]
    assert any("/part-c-" in k for k in keys)
    search = SearchService(store, CONFIG, settings=settings)
    assert len(search.plates("?*", mode="wildcard", limit=1000)) == 18 and len(search.vehicles(limit=1000)) == 18
    assert [h.camera_id for h in search.plates(PLATE)] == ["cam-3", "cam-2", "cam-1"]


def test_search_catches_up_with_segments_flushed_after_the_snapshot(env) -> None:  # noqa: ANN001
    bus, store, settings = env
    scene = make_scene()
    publish(bus, scene.messages[: len(scene.messages) // 2])
    worker = IndexWorker(CONFIG, bus=bus, store=store, settings=settings.model_copy(
        update={"shard_snapshot_interval_s": 3600}))
    worker.setup()
    run(worker, len(scene.messages) // 2)
    worker.faces.snapshot()
    search = SearchService(store, CONFIG, settings=settings)
    early = len(search.faces(scene.people[7], model_id=MODEL, k=50, threshold=0.6))
    publish(bus, scene.messages[len(scene.messages) // 2:])
    run(worker, scene.count)  # flushed to Parquet, no new snapshot
    search.refresh()
    late = search.faces(scene.people[7], model_id=MODEL, k=50, threshold=0.6)
    assert early < len(late) == 6
    assert search.face_index.rebuilt == 0
    worker.teardown()
