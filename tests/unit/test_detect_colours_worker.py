"""The detect worker puts a person's top and trousers colours into the track summary (and a vehicle's body colour,
with no upper/lower), read from the object's own pixels: a scripted detector over the in-memory bus, frames painted
with a person in a red top and blue trousers walking on a lawn beside a white car (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.local import LocalStore
from schemas.topics import TRACKS
from schemas.tracks import TrackSummary
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import publish_frames, run_until
from tests.unit.test_detect_crops import BITS, H, Row, ScriptedDetector, W
from workers.detect.worker import DetectWorker

LAWN, RED, BLUE, SKIN, WHITE = (40, 150, 40), (40, 40, 200), (160, 100, 40), (120, 150, 210), (235, 235, 235)


def painted(index: int, person: tuple[int, int, int, int], car: tuple[int, int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(index)
    image = (np.full((H, W, 3), LAWN, np.int16) + rng.integers(-8, 9, (H, W, 3))).clip(0, 255).astype(np.uint8)
    x1, y1, x2, y2 = car
    image[y1:y2, x1:x2] = WHITE
    x1, y1, x2, y2 = person
    h, w = y2 - y1, x2 - x1
    image[y1 : y1 + h // 7, x1 + w // 3 : x2 - w // 3] = SKIN  # head
    image[y1 + h // 7 : y1 + h // 2, x1 + w // 6 : x2 - w // 6] = RED  # top, with lawn beside the arms
    image[y1 + h // 2 : y2, x1 + w // 4 : x1 + w // 2 - 2] = BLUE  # two legs, lawn between them
    image[y1 + h // 2 : y2, x1 + w // 2 + 2 : x2 - w // 4] = BLUE
    for bit in range(BITS):
        image[0:16, 16 * bit : 16 * bit + 16] = 255 if index >> bit & 1 else 0
    return image


def test_person_summary_carries_top_and_trousers_colours(tmp_path: Path) -> None:
    frames, script = [], []
    for k in range(20):
        person = (100 + 8 * k, 150, 160 + 8 * k, 330)
        car = (380, 250, 600, 380)
        frames.append(painted(k, person, car))
        script.append([("person", tuple(float(v) for v in person), 0.9), ("car", tuple(float(v) for v in car), 0.8)])
    script += [[] for _ in range(13)]
    frames += [painted(20 + k, (0, 0, 0, 0), (0, 0, 0, 0)) for k in range(13)]
    rows: list[list[Row]] = script  # type: ignore[assignment]
    config = with_overrides(TubelineConfig(), {"detect.commit_interval_s": 0.2})
    bus, store = MemoryBus(default_partitions=1), LocalStore(tmp_path / "store")
    publish_frames(bus, "cam", "s1", frames, fps=5.0)
    run_until(DetectWorker(config, bus=bus, store=store, detector=ScriptedDetector(rows), close_on_stop=True),
              len(frames))
    with bus.consumer([TRACKS.name], "check") as consumer:
        summaries = {s.class_name: s for s in (TrackSummary.from_json(m.value) for m in drain(consumer, 0.3))}
    person, car = summaries["person"], summaries["car"]
    assert (person.colour, person.upper_colour, person.lower_colour) == ("red", "red", "blue")
    assert (car.colour, car.upper_colour, car.lower_colour) == ("white", None, None)
