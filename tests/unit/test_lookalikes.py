"""Look-alike characters: groups, canonical forms (= SQL translate), measured pair costs and their fallback."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipeline.lookalikes import DEFAULT_GROUPS, LookAlikes, cost_from_probability, load_measured
from workers.plate.matching import weighted_distance


@pytest.mark.parametrize(("p", "cost"), [(0.5, 0.1), (0.1, 1 / 3), (0.01, 2 / 3), (0.001, 1.0), (0.0, 1.0)])
def test_cost_from_probability(p: float, cost: float) -> None:
    assert cost_from_probability(p) == pytest.approx(cost, abs=1e-3)


def test_translate_in_duckdb_equals_canonical() -> None:
    table = LookAlikes()
    source, target = table.translation()
    for text in ["川AF058Y", "AB45IEJ", "MNWH1IT0ODQ", "浙A12345", "TVQ346"]:
        got = duckdb.connect().execute("SELECT translate(?, ?, ?)", [text, source, target]).fetchone()[0]
        assert got == table.canonical(text)


def test_measured_costs_apply_inside_groups_and_fall_back_elsewhere(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"costs": {"OD": 0.3, "HW": 0.4, "AB": 0.1, "XYZ": 0.2}}))
    measured = load_measured(path)
    assert measured == {"DO": 0.3, "HW": 0.4, "AB": 0.1}  # keys sorted; malformed keys dropped
    table = LookAlikes(DEFAULT_GROUPS, 0.25, measured)
    assert table.substitution("O", "D") == 0.3 and table.substitution("W", "H") == 0.4
    assert table.substitution("0", "O") == 0.25  # no measurement: the configured cost
    assert table.substitution("A", "B") == 1.0  # not a group: an ordinary edit whatever was measured
    assert weighted_distance("AD924HL", "AD924WL", table) == pytest.approx(0.4)


def test_shipped_costs_are_measured_and_inside_the_groups() -> None:
    measured = load_measured()
    assert measured, "pipeline/lookalikes.json is missing: run benchmarks/models/plate_confusions.py --write"
    table = LookAlikes()
    assert all(table.confusable(pair[0], pair[1]) and 0.1 <= cost < 1 for pair, cost in measured.items())
