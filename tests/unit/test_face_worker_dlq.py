"""The face worker's dead letters and skip policies: a missing or undecodable crop goes to
``tubeline.objects.v1.dlq`` with the reason; vehicles, small and stale persons are skipped and counted;
a real portrait in the same batch still gives a face record."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bus import dead_letter_topic
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.enrich import FaceWorkerConfig
from pipeline.store.local import LocalStore
from schemas.faces import FaceRecord
from schemas.topics import FACES, OBJECTS
from tests.contract.test_bus_contract import drain
from tests.fixtures.enrich.make_videos import TESTDATA
from tests.fixtures.enrich.objects import T0, publish, put_crop
from workers.face.worker import FaceWorker


@pytest.fixture(scope="module")
def analyzer():  # noqa: ANN201
    from models.zoo import ModelZoo

    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    return ModelZoo(TubelineConfig().models).face_analyzer()


def portrait(height: int) -> np.ndarray:
    image = cv2.imread(str(TESTDATA / "faces" / "person_a_1.jpg"), cv2.IMREAD_COLOR)
    return cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)


def test_face_worker_dead_letters_and_skips(analyzer, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    person = put_crop(store, portrait(420), "cam-p:s1:1", 1, class_name="person")
    missing = put_crop(store, portrait(420), "cam-p:s1:2", 2, class_name="person")
    store.delete(missing.crop_key)
    garbage = put_crop(store, portrait(420), "cam-p:s1:3", 3, class_name="person")
    store.put(garbage.crop_key, b"GIF89a")
    car = put_crop(store, portrait(420), "cam-p:s1:4", 4)  # a vehicle: not for the face worker
    small = put_crop(store, portrait(100), "cam-p:s1:5", 5, class_name="person")  # box 83 px tall
    stale = put_crop(store, portrait(420), "cam-p:s1:6", 6, class_name="person", at=T0 - timedelta(hours=1))
    publish(bus, [missing, garbage, car, small, stale, person])
    worker = FaceWorker(TubelineConfig(), bus=bus, store=store, analyzer=analyzer, clock=lambda: T0,
                        settings=FaceWorkerConfig(max_lag_s=600))
    worker.setup()
    try:
        while worker.stats["objects"] < 6:
            worker.step()
    finally:
        worker.teardown()
    assert worker.dead_letter is not None and worker.dead_letter.count == 2
    assert (worker.stats["skipped_class"], worker.stats["skipped_small"], worker.stats["skipped_stale"]) == (1, 1, 1)
    with bus.consumer([dead_letter_topic(OBJECTS.name)], "dlq") as consumer:
        dead = drain(consumer, 0.3)
    assert [m.header_str("tubeline-dlq-reason") for m in dead] == [
        f"crop object {missing.crop_key} not found in the store",
        f"crop object {garbage.crop_key} (6 bytes) is not a decodable image",
    ]
    assert {m.header_str("tubeline-dlq-group") for m in dead} == {"tubeline-face"}
    with bus.consumer([FACES.name], "check") as consumer:
        (record,) = [FaceRecord.from_json(m.value) for m in drain(consumer, 0.3)]
    assert record.face_id == "cam-p:s1:1.face.1" and record.track_id == person.track_id
    assert record.crop_key == f"faces/cam-p/2026-11-25/{person.track_id}/1.jpg"
    chip = cv2.imdecode(np.frombuffer(store.get(record.crop_key), np.uint8), cv2.IMREAD_COLOR)
    assert chip.shape[:2] == (analyzer.embedder.chip_size,) * 2
    cx, cy = (record.box[0] + record.box[2]) / 2, (record.box[1] + record.box[3]) / 2  # in frame pixels
    px1, py1, px2, py2 = person.box
    assert px1 < cx < px2 and py1 < cy < py1 + 0.6 * (py2 - py1)
    assert all(record.box[0] <= x <= record.box[2] and record.box[1] <= y <= record.box[3] for x, y in record.landmarks)
    assert record.quality.score > 0.5 and record.embedding.dimension == 128
