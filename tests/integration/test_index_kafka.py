"""The indexer on the real Kafka-protocol broker and S3 server, and SearchService reading the S3 catalog.

One scene of tracks, plates, faces, alerts and camera status is published to unique topics. A first
indexer buffers it and dies without flushing; a second writes its segments to S3 and dies before
committing; a third replays everything in other batches. SearchService then finds every plate and
face exactly once, draws the plate's trajectory in time order, and rebuilds a deleted FAISS shard
from the Parquet segments in S3 with the same answers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.config.index import IndexConfig
from pipeline.search.service import SearchService
from pipeline.store import open_store
from tests.flow.test_index_flow import CAMERAS, MODEL, PLATE, make_scene, publish
from workers.index.worker import IndexWorker

pytestmark = pytest.mark.integration


def run_until(worker: IndexWorker, processed: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while worker.processed < processed:
        assert time.monotonic() < deadline, f"only {worker.processed} of {processed} messages committed"
        worker.step()


def test_indexer_on_kafka_and_s3_replays_crashes_and_search_reads_s3(
    real_stack, unique_name: str, tmp_path: Path  # noqa: ANN001
) -> None:
    config = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus = open_bus(config)
    store = open_store(config)
    settings = IndexConfig(cache_dir=tmp_path / "cache", flush_max_records=30, flush_interval_s=0.5,
                           compact_after_parts=0)
    scene = make_scene()
    bus.ensure_topics(IndexWorker(config, bus=bus, store=store, settings=settings).topic_specs())
    publish(bus, scene.messages)  # type: ignore[arg-type]

    first = IndexWorker(config, bus=bus, store=store,
                        settings=settings.model_copy(update={"flush_max_records": 10_000, "flush_interval_s": 3600}))
    first.setup()
    deadline = time.monotonic() + 60
    while first.writer.records < scene.count and time.monotonic() < deadline:
        first.step()
    assert first.writer.records == scene.count and first.processed == 0
    first.consumer.close()  # dies with everything buffered: nothing written, nothing committed
    assert not list(store.list("catalog/"))

    second = IndexWorker(config, bus=bus, store=store, settings=settings)
    second.setup()

    def die(messages: object = None) -> None:
        msg = "killed between the write and the commit"
        raise RuntimeError(msg)

    second.consumer.commit = die  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        run_until(second, scene.count)
    second.consumer.close()
    assert list(store.list("catalog/")), "the second worker wrote segments before it died"

    third = IndexWorker(config, bus=bus, store=store, settings=settings.model_copy(update={"flush_max_records": 17}))
    third.setup()
    try:
        run_until(third, scene.count)
        third.drain()
    finally:
        third.teardown()

    search = SearchService(store, config, settings=settings)
    assert [h.camera_id for h in search.plates(PLATE)] == ["cam-3", "cam-2", "cam-1"]
    assert len(search.plates("?*", mode="wildcard", limit=1000)) == 18
    assert len(search.vehicles(limit=1000)) == 18 and len(search.alerts()) == 3
    assert [s.camera_id for s in search.plate_trajectory(PLATE)] == list(CAMERAS)
    assert search.plates(PLATE, cameras=["cam-2"])[0].camera_id == "cam-2"
    before = [[h.face_id for h in search.faces(p, model_id=MODEL, k=5)] for p in scene.people]
    assert len({f.split(".face")[0].split(":")[-1] for f in before[7][:3]}) == 1  # person 7: one walker number
    search.close()

    shard_key = f"index/faces/{MODEL}/2024-05-01/shard.faiss"
    assert store.exists(shard_key)
    store.delete(shard_key)
    again = SearchService(store, config, settings=settings.model_copy(update={"cache_dir": tmp_path / "cache2"}))
    assert [[h.face_id for h in again.faces(p, model_id=MODEL, k=5)] for p in scene.people] == before
    # rebuilt in memory from the Parquet truth; the query layer never writes index/ (only the indexer may)
    assert again.face_index.rebuilt == 1 and not store.exists(shard_key)
    again.close()
