"""Dead letters of the plate worker: invalid messages, missing and undecodable crops go to
``tubeline.objects.v1.dlq`` with the reason; the rest of the batch is handled and everything is committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bus import dead_letter_topic
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.store.local import LocalStore
from schemas.topics import OBJECTS, PLATES
from tests.contract.test_bus_contract import drain
from tests.fixtures.enrich.make_videos import TESTDATA, vehicle_still
from tests.fixtures.enrich.objects import CAM, RED, T0, make_worker, publish, put_crop, run


@pytest.fixture(scope="module")
def recognizer():  # noqa: ANN201
    from models.zoo import ModelZoo

    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    return ModelZoo(TubelineConfig().models).plate_recognizer()


def test_bad_objects_are_dead_lettered_with_the_reason(recognizer, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    good = put_crop(store, vehicle_still("blue-latin", 460)[0], RED, 4)
    missing = put_crop(store, vehicle_still("red", 380)[0], "cam-p:s1:7", 1)
    store.delete(missing.crop_key)
    garbage = put_crop(store, vehicle_still("red", 380)[0], "cam-p:s1:8", 2)
    store.put(garbage.crop_key, b"\xff\xd8\xff\xe0 not really a jpeg")
    empty = put_crop(store, vehicle_still("red", 380)[0], "cam-p:s1:9", 3)
    store.put(empty.crop_key, b"")
    publish(bus, [missing, garbage, empty])
    with bus.producer() as producer:
        producer.send(OBJECTS.name, b'{"type": "object", "camera_id": 7}', key=CAM)
    publish(bus, [good])
    worker = run(make_worker(bus, store, recognizer, clock=lambda: T0), 5)
    assert worker.dead_letter is not None and worker.dead_letter.count == 4
    with bus.consumer([dead_letter_topic(OBJECTS.name)], "dlq") as consumer:
        reasons = [m.header_str("tubeline-dlq-reason") for m in drain(consumer, 0.3)]
    assert reasons[0] == f"crop object {missing.crop_key} not found in the store"
    assert reasons[1].endswith("is not a decodable image") and "(22 bytes)" in reasons[1]
    assert "(0 bytes)" in reasons[2]
    assert reasons[3].startswith("invalid object message")
    with bus.consumer([PLATES.name], "check") as consumer:
        assert len(drain(consumer, 0.3)) == 1  # the good crop after the bad ones was read
    with bus.consumer([OBJECTS.name], worker.group) as consumer:
        assert drain(consumer, 0.3) == []  # every message was committed, dead letters included
