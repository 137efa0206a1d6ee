"""Accuracy floors at the measured values (benchmarks/models/eval_floors.json): close-up vehicle recall and vehicle
type per detector views, vehicle and person colours. Real models and the shared dev images; a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.detect.colour_accuracy import evaluate as colour_eval
from benchmarks.detect.vehicles import evaluate as vehicle_eval
from models.multiview import MultiViewDetector
from models.zoo import ModelZoo

FLOORS = json.loads((Path(__file__).resolve().parents[2] / "benchmarks/models/eval_floors.json").read_text())


@pytest.mark.parametrize("views", sorted(FLOORS["vehicles"]))
def test_vehicle_floors(views: str) -> None:
    base = ModelZoo().detector()
    detector = MultiViewDetector(getattr(base, "base", base), views.split("+"))
    result = vehicle_eval(detector)
    floors = FLOORS["vehicles"][views]
    assert [result.close_found, result.close_total] >= floors["close-up recall"], result.rows
    assert result.close_total == floors["close-up recall"][1]
    assert result.type_right >= floors["type accuracy"][0] and result.type_labelled == floors["type accuracy"][1]


def test_colour_floors() -> None:
    scores = colour_eval()
    for name, (right, total) in FLOORS["colours"].items():
        assert scores[name].total == total, name
        assert scores[name].right >= right, (name, scores[name].misses)
