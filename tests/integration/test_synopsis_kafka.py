"""The synopsis worker on the real Kafka-protocol broker and S3 server: track summaries of the vtest.avi run on
the tracks topic (some delivered twice), its recordings in the bucket, a request written to the bucket; the worker
(its own thread, production lifecycle) reads the topic, builds, and leaves the MP4, the index and a ``done``
status in S3 — and a second worker started afterwards does not build it again."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from pipeline.bus import open_bus
from pipeline.bus.base import TopicSpec
from pipeline.config import with_overrides
from pipeline.store import open_store
from pipeline.synopsis.index import SynopsisIndex, object_at
from pipeline.synopsis.queue import submit_synopsis, synopsis_status
from pipeline.synopsis.request import SynopsisKeys
from schemas.topics import TRACKS
from tests.flow.test_synopsis_flow import CAMERA, SETTINGS, vtest_run
from tests.unit.test_api_support import add_users, login
from workers.api.app import create_app
from workers.api.context import build_context
from workers.synopsis.worker import SynopsisWorker

pytestmark = pytest.mark.integration


def test_worker_builds_a_requested_synopsis_on_kafka_and_s3(
    real_stack, unique_name: str, tmp_path_factory: pytest.TempPathFactory  # noqa: ANN001
) -> None:
    vtest = vtest_run(tmp_path_factory)
    config = real_stack.with_prefix(unique_name, bucket=unique_name)
    store, bus = open_store(config), open_bus(config)
    local = vtest.store()
    for info in local.list(f"recordings/{CAMERA}/"):
        store.put(info.key, local.get(info.key), content_type=info.content_type)
    bus.ensure_topics([TopicSpec(TRACKS.name, 3)])
    with bus.producer() as producer:
        for summary in vtest.summaries + vtest.summaries[:3]:
            producer.send(TRACKS.name, summary.to_json(), key=summary.camera_id)
        producer.flush()

    settings = SETTINGS.model_copy(update={"worker": SETTINGS.worker.model_copy(update={"poll_s": 0.5})})
    request = vtest.request(requested_by="integration")
    worker = SynopsisWorker(config, bus=bus, store=store, settings=settings)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        # Submit once the worker's cache holds the tracks (a fresh consumer group joins first).
        deadline = time.monotonic() + 90
        while len(worker.cache) < len(vtest.summaries):
            assert time.monotonic() < deadline, f"cache has {len(worker.cache)} of {len(vtest.summaries)} tracks"
            assert thread.is_alive(), worker.error
            time.sleep(0.2)
        synopsis_id = submit_synopsis(store, request, settings)
        while (status := synopsis_status(store, CAMERA, synopsis_id, settings)) is None or status.state != "done":
            assert status is None or status.state in {"queued", "running"}, status
            assert time.monotonic() < deadline + 90, "no synopsis within 3 minutes"
            time.sleep(0.5)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive() and worker.error is None

    keys = SynopsisKeys.of(CAMERA, synopsis_id, settings.prefix, settings.request_prefix)
    assert not store.exists(keys.request)
    video = store.get(keys.video)
    assert video[4:8] == b"ftyp" and store.stat(keys.video).content_type == "video/mp4"
    index = SynopsisIndex.from_json(store.get(keys.index))
    assert sorted(o.track_id for o in index.objects) == sorted({s.track_id for s in vtest.summaries})
    assert index.duration_s <= vtest.source_s / 5
    obj = index.objects[0]
    x1, y1, x2, y2 = obj.boxes[0]
    hit = object_at(index, obj.first_frame / index.fps, (x1 + x2) / 2, (y1 + y2) / 2)
    assert hit is not None and hit.original_time >= min(o.original_start for o in index.objects)

    # A new worker (say, after a restart) finds the request done and builds nothing.
    again = SynopsisWorker(config, bus=bus, store=store, settings=settings, source=worker.cache)
    assert again.poll_requests() == 0 and again.built == 0

    # The API over the same bucket: the synopsis, its video, a click and the original clip, all from S3.
    add_users(store)
    api_config = with_overrides(config, {"api.cache_dir": str(tmp_path_factory.mktemp("api-cache"))})
    ctx = build_context(api_config, store=store, face_analyzer_factory=lambda: None)
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        base = f"/api/synopses/{CAMERA}/{synopsis_id}"
        detail = client.get(base).json()
        assert detail["synopsis"]["state"] == "done" and len(detail["objects"]) == len(index.objects)
        served = client.get(f"{base}/video.mp4")
        assert served.status_code == 200 and served.content == video
        click = {"t": (obj.first_frame + 0.5) / index.fps, "x": (x1 + x2) / 2, "y": (y1 + y2) / 2}
        located = client.get(f"{base}/at", params=click).json()
        assert located["object"]["track_id"] == hit.object.track_id
        cut = client.post(f"{base}/clip", json={**click, "case": "CASE-2024-0042"})
        assert cut.status_code == 200, cut.text
        export = cut.json()["export"]
        assert export["transcoded"] and store.exists(export["key"])  # MS-MPEG4 → H.264 for the browser
        assert client.get(export["url"]).content[4:8] == b"ftyp"
    ctx.stop()
    bus.close()
    store.close()
