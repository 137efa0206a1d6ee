"""A small investigation scene for the API's end-to-end tests, and its flow test on the in-memory bus.

The scene is published as wire messages (TrackSummary, PlateRead, FaceRecord with real embeddings from
the model zoo, Alert, CameraStatus), catalogued by the real indexer, searched through the real
SearchService, with real H.264 recordings in the store:

* plate 川AF058Y drives cam-a (T0+10 s) → cam-b (T0+70 s) → cam-c (T0+130 s); look-alike plates elsewhere;
* white vans on cam-a and cam-c, a red car on cam-b;
* person A (``person_a_1`` and its mirror image) on cam-a and cam-c, person B (``person_b_1``) on cam-b;
* alerts on cam-a and cam-c; every camera online;
* recordings of cam-a (T0 … T0+40 s) and cam-c (T0+120 … T0+160 s).

cam-a and cam-b are in unit 510104, cam-c in 510116 (see ``tests.unit.test_api_support``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from benchmarks.search import synthetic as syn
from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.base import Bus
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.base import ObjectStore
from pipeline.store.local import LocalStore
from schemas.common import WireMessage
from schemas.faces import FaceEmbedding, FaceQuality, FaceRecord
from schemas.topics import ALERTS, CAMERA_STATUS, FACES, PLATES, TRACKS
from schemas.tracks import TrackSummary
from tests.unit.test_api_support import T0, add_users, login, register_cameras, write_recording
from workers.api.app import create_app
from workers.api.context import build_context
from workers.index.worker import IndexWorker

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
PLATE = "川AF058Y"
CASE = "CASE-2024-0042"
ROUTE = (("cam-a", 10), ("cam-b", 70), ("cam-c", 130))


@dataclass
class FaceSample:
    embedding: np.ndarray
    quality: float
    sharpness: float
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    crop: bytes


@dataclass
class Scene:
    messages: list[tuple[str, WireMessage]] = field(default_factory=list)
    faces: dict[str, FaceSample] = field(default_factory=dict)
    model_id: str = ""

    def topic_of(self, message: WireMessage) -> str:
        return next(t for t, m in self.messages if m is message)


def load_analyzer() -> Any:
    from models.zoo import ModelZoo
    from pipeline.config.models import ModelsConfig

    return ModelZoo(ModelsConfig()).face_analyzer()


def analyse_faces(analyzer: Any) -> dict[str, FaceSample]:
    images = {name: cv2.imread(str(TESTDATA / "faces" / f"{name}.jpg")) for name in ("person_a_1", "person_b_1")}
    images["person_a_1_mirror"] = cv2.flip(images["person_a_1"], 1)
    out = {}
    for name, image in images.items():
        faces = analyzer.analyze(image)
        assert len(faces) == 1, name
        x1, y1, x2, y2 = (float(v) for v in faces.xyxy[0])
        ok, buf = cv2.imencode(".jpg", image[int(y1):int(y2), int(x1):int(x2)])
        assert ok
        out[name] = FaceSample(np.asarray(faces.data["embedding"][0], np.float64), float(faces.data["quality"][0]),
                               float(faces.data["sharpness"][0]), (x1, y1, x2, y2), faces.data["landmarks"][0],
                               buf.tobytes())
    return out


def face_record(track: TrackSummary, sample: FaceSample, model_id: str) -> FaceRecord:
    v = sample.embedding / np.linalg.norm(sample.embedding)
    captured = track.started_at + timedelta(seconds=1)
    return FaceRecord(
        face_id=f"{track.track_id}.face.0", track_id=track.track_id, camera_id=track.camera_id, captured_at=captured,
        embedding=FaceEmbedding(model_id=model_id, dimension=len(v), values=tuple(float(x) for x in v)),
        quality=FaceQuality(score=round(sample.quality, 3), sharpness=min(1.0, sample.sharpness / 60.0),
                            brightness=0.9, frontality=0.9, resolution=1.0, detection=0.95),
        crop_key=f"faces/{track.camera_id}/{captured:%Y-%m-%d}/{track.track_id}/0.jpg",
        box=sample.box, landmarks=tuple((float(x), float(y)) for x, y in sample.landmarks),  # type: ignore[arg-type]
    )


def _jpeg(bgr: tuple[int, int, int], size: tuple[int, int] = (160, 100)) -> bytes:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = bgr
    return cv2.imencode(".jpg", image)[1].tobytes()


def build_scene(analyzer: Any) -> Scene:
    scene = Scene(faces=analyse_faces(analyzer), model_id=str(analyzer.embedder.model_id))
    add = scene.messages.append
    for number, (cam, dt) in enumerate(ROUTE):
        add((CAMERA_STATUS.name, syn.status(cam, T0, "online")))
        car = syn.track(cam, number, T0 + timedelta(seconds=dt), colour="silver", vehicle_type="car")
        add((TRACKS.name, car))
        add((PLATES.name, syn.plate(car, PLATE)))
    others = [("cam-a", "川AF058X", "van", "white", 30), ("cam-b", "京A12345", "car", "red", 90),
              ("cam-c", "川B00001", "van", "white", 150)]
    for number, (cam, text, vtype, colour, dt) in enumerate(others, start=10):
        vehicle = syn.track(cam, number, T0 + timedelta(seconds=dt), colour=colour, vehicle_type=vtype)
        add((TRACKS.name, vehicle))
        add((PLATES.name, syn.plate(vehicle, text)))
    people = [("cam-a", "person_a_1", 20), ("cam-b", "person_b_1", 80), ("cam-c", "person_a_1_mirror", 140)]
    for number, (cam, face, dt) in enumerate(people, start=100):
        walker = syn.track(cam, number, T0 + timedelta(seconds=dt), class_name="person", vehicle_type=None)
        add((TRACKS.name, walker))
        add((FACES.name, face_record(walker, scene.faces[face], scene.model_id)))
    add((ALERTS.name, syn.alert("cam-a", 1, T0 + timedelta(seconds=12))))
    add((ALERTS.name, syn.alert("cam-c", 2, T0 + timedelta(seconds=132))))
    return scene


def store_media(store: ObjectStore, scene: Scene) -> None:
    """Crops for every record, cameras, users, and the recordings of cam-a and cam-c."""
    plate_crop = (TESTDATA / "plates" / "cn" / "crop_0.jpg").read_bytes()
    samples = iter(scene.faces.values())
    for _, message in scene.messages:
        if isinstance(message, TrackSummary) and message.best_crop_key:
            colour = {"white": (235, 235, 235), "red": (40, 40, 200), "silver": (190, 190, 180)}.get(message.colour,
                                                                                                  (90, 90, 90))
            store.put(message.best_crop_key, _jpeg(colour), content_type="image/jpeg")
        elif isinstance(message, FaceRecord):
            store.put(message.crop_key, next(samples).crop, content_type="image/jpeg")
        elif hasattr(message, "crop_key"):
            store.put(message.crop_key, plate_crop, content_type="image/jpeg")
    register_cameras(store)
    add_users(store)
    write_recording(store, "cam-a", T0, 40)
    write_recording(store, "cam-c", T0 + timedelta(seconds=120), 40)


def publish(bus: Bus, messages: list[tuple[str, WireMessage]]) -> None:
    with bus.producer() as producer:
        for topic, message in messages:
            producer.send(topic, message.to_json(), key=message.camera_id)  # type: ignore[attr-defined]
        producer.flush()


def index_all(config: TubelineConfig, bus: Bus, store: ObjectStore, count: int, timeout_s: float = 90.0) -> None:
    """Run the real indexer until ``count`` messages are catalogued and committed."""
    worker = IndexWorker(config, bus=bus, store=store)
    worker.setup()
    deadline = time.monotonic() + timeout_s
    try:
        while worker.processed < count:
            assert time.monotonic() < deadline, f"indexed {worker.processed} of {count} messages"
            worker.step()
        worker.drain()
    finally:
        worker.teardown()


def scene_config(base: TubelineConfig, tmp: Path) -> TubelineConfig:
    return with_overrides(base, {
        "runtime.poll_timeout_s": 0.2,
        "index.cache_dir": str(tmp / "search-cache"),
        "index.flush_interval_s": 0.3,
        "index.compact_after_parts": 0,
        "api.cache_dir": str(tmp / "api-cache"),
        "api.port": 0,
        "api.refresh_s": 0.5,
        "api.sse_keepalive_s": 0.3,
    })


def setup_scene(config: TubelineConfig, bus: Bus, store: ObjectStore, analyzer: Any) -> Scene:
    scene = build_scene(analyzer)
    store_media(store, scene)
    publish(bus, scene.messages)
    index_all(config, bus, store, len(scene.messages))
    return scene


# -- flow: the same scene on the in-memory bus and a local folder ------------------------------------------------
@pytest.fixture(scope="module")
def analyzer() -> Any:
    return load_analyzer()


def test_api_over_the_real_search_service_on_the_memory_bus(tmp_path: Path, analyzer: Callable[[], Any]) -> None:
    config = scene_config(TubelineConfig(), tmp_path)
    store, bus = LocalStore(tmp_path / "store"), MemoryBus(default_partitions=3)
    setup_scene(config, bus, store, analyzer)
    ctx = build_context(config, store=ScopedStore(store, access_matrix(config)["api"]),
                        face_analyzer_factory=lambda: analyzer)
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        plates = client.get("/api/search/plates", params={"q": "川A*58?", "mode": "wildcard"}).json()
        assert {h["text"] for h in plates["hits"]} == {PLATE, "川AF058X"} and plates["count"] == 4
        trajectory = client.get("/api/trajectory/plate", params={"plate": PLATE, "case": CASE}).json()
        assert [s["camera_id"] for s in trajectory["sightings"]] == ["cam-a", "cam-b", "cam-c"]
        query = (TESTDATA / "faces" / "person_a_2.jpg").read_bytes()
        faces = client.post("/api/search/faces", data={"case": CASE}, files={"image": ("a2.jpg", query)}).json()
        assert faces["hits"][0]["track_id"] in ("cam-a:s0:100", "cam-c:s0:102")
        assert faces["hits"][-1]["track_id"] == "cam-b:s0:101" and not faces["hits"][-1]["match"]
        export = client.post("/api/exports", json={"kind": "plate", "id": plates["hits"][-1]["id"], "case": CASE})
        assert export.status_code == 200, export.text
        assert export.json()["duration_s"] == pytest.approx(14.0, abs=1.1)
