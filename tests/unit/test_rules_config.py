"""The rules section of the configuration: strict fields, named cross-field checks, the documented example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pipeline.config.rules import (
    CameraOfflineRule,
    RulesConfig,
    check_line,
    check_polygon,
    check_unique_ids,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def camera(**entry: Any) -> dict[str, Any]:
    return {"cameras": [{"camera_id": "cam-01", **entry}]}


@pytest.mark.parametrize(
    ("case", "data", "message"),
    [
        ("polygon of two points", camera(zones=[{"id": "z", "polygon": [[0, 0], [1, 1]]}]),
         "at least 3 points"),
        ("empty polygon", camera(zones=[{"id": "z", "polygon": []}]), "at least 1 item"),
        ("collinear polygon", camera(zones=[{"id": "z", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}]), "no area"),
        ("repeated points", camera(zones=[{"id": "z", "polygon": [[0.2, 0.2], [0.2, 0.2], [0.2, 0.2]]}]),
         "no area"),
        ("self-crossing polygon", camera(zones=[{"id": "z", "polygon": [[0, 0], [1, 0], [0.2, 1], [0.8, 1]]}]),
         "cross each other"),
        ("coordinate above 1 (pixels given)", camera(zones=[{"id": "z", "polygon": [[0, 0], [640, 0], [640, 480]]}]),
         "less than or equal to 1"),
        ("negative coordinate", camera(zones=[{"id": "z", "polygon": [[-0.1, 0], [1, 0], [1, 1]]}]),
         "greater than or equal to 0"),
        ("point with three numbers", camera(zones=[{"id": "z", "polygon": [[0, 0, 0], [1, 0], [1, 1]]}]),
         "at most 2 items"),
        ("line endpoints equal", camera(lines=[{"id": "l", "a": [0.5, 0.5], "b": [0.5, 0.5]}]), "must differ"),
        ("duplicate zone id", camera(zones=[{"id": "z", "polygon": SQUARE}, {"id": "z", "polygon": SQUARE}]),
         "duplicate zone"),
        ("duplicate line id", camera(lines=[{"id": "l", "a": [0, 0], "b": [1, 1]}] * 2), "duplicate line"),
        ("duplicate rule id across cameras", {"cameras": [
            {"camera_id": "a", "rules": [{"id": "r", "kind": "crowding", "min_count": 2}]},
            {"camera_id": "b", "rules": [{"id": "r", "kind": "crowding", "min_count": 2}]}]}, "duplicate rule id 'r'"),
        ("duplicate camera entry", {"cameras": [{"camera_id": "a"}, {"camera_id": "a"}]}, "duplicate camera entry"),
        ("unknown zone", camera(rules=[{"id": "r", "kind": "zone_intrusion", "zone": "gate"}]),
         "names zone 'gate'"),
        ("unknown line", camera(rules=[{"id": "r", "kind": "line_crossing", "line": "l"}]), "names line 'l'"),
        ("crowding in an unknown zone", camera(rules=[{"id": "r", "kind": "crowding", "zone": "z", "min_count": 2}]),
         "names zone 'z'"),
        ("unknown kind", camera(rules=[{"id": "r", "kind": "speeding"}]), "does not match any of the expected tags"),
        ("unknown field", camera(zones=[{"id": "z", "polygon": SQUARE}],
                                 rules=[{"id": "r", "kind": "loitering", "zone": "z", "dwell": 5}]),
         "Extra inputs are not permitted"),
        ("loitering without dwell", camera(zones=[{"id": "z", "polygon": SQUARE}],
                                          rules=[{"id": "r", "kind": "loitering", "zone": "z"}]), "Field required"),
        ("negative cool-down", camera(rules=[{"id": "r", "kind": "camera_offline", "cooldown_s": -1}]),
         "greater than or equal to 0"),
        ("bad direction", camera(lines=[{"id": "l", "a": [0, 0], "b": [1, 1]}],
                                 rules=[{"id": "r", "kind": "line_crossing", "line": "l", "direction": "in"}]),
         "'a_to_b', 'b_to_a' or 'both'"),
        ("upper-case class", camera(rules=[{"id": "r", "kind": "crowding", "min_count": 2, "classes": ["Person"]}]),
         "should match pattern"),
        ("crowd of zero", camera(rules=[{"id": "r", "kind": "crowding", "min_count": 0}]), "greater than or equal to 1"),
        ("bad severity", camera(rules=[{"id": "r", "kind": "camera_offline", "severity": "urgent"}]), "severity"),
        ("camera id with a slash", {"cameras": [{"camera_id": "a/b"}]}, "should match pattern"),
    ],
)
def test_invalid_rules_are_rejected_with_a_reason(case: str, data: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RulesConfig.model_validate(data)
    text = str(info.value)
    assert message in text, f"{case}: {text}"


def test_errors_locate_the_bad_zone() -> None:
    data = camera(zones=[{"id": "ok", "polygon": SQUARE}, {"id": "bad", "polygon": [[0, 0], [1, 1]]}])
    with pytest.raises(ValidationError) as info:
        RulesConfig.model_validate(data)
    (error,) = info.value.errors()
    assert error["loc"] == ("cameras", 0, "zones", 1)
    assert "zone 'bad'" in error["msg"]


@pytest.mark.parametrize(
    "polygon",
    [
        [[0, 0], [1, 0], [0, 1]],
        SQUARE,
        [[0.1, 0.1], [0.5, 0.3], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]],  # concave
    ],
)
def test_simple_polygons_pass(polygon: list) -> None:
    check_polygon([tuple(p) for p in polygon], "zone")


def test_named_checks_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="must differ"):
        check_line((0.3, 0.3), (0.3, 0.3), "line 'x'")
    check_line((0.3, 0.3), (0.3, 0.4), "line 'x'")
    with pytest.raises(ValueError, match="duplicate rule id 'b'"):
        check_unique_ids(["a", "b", "c", "b"], "rule")


def test_defaults_and_discriminated_rules() -> None:
    cfg = RulesConfig.model_validate({"cameras": [{"camera_id": "*", "rules": [{"id": "o", "kind": "camera_offline"}]}]})
    (rule,) = cfg.cameras[0].rules
    assert isinstance(rule, CameraOfflineRule)
    assert rule.grace_s == 60 and rule.cooldown_s == 60 and rule.severity == "medium" and rule.enabled
    assert rule.ignore_reasons == ["stopped"]
    assert [e.camera_id for e in cfg.entries_for("anything")] == ["*"]
    assert RulesConfig().cameras == []


def test_every_field_is_titled_and_described() -> None:
    schema = RulesConfig.model_json_schema()
    for name, sub in [("RulesConfig", schema), *schema["$defs"].items()]:
        for field, prop in sub.get("properties", {}).items():
            assert prop.get("title") and prop.get("description"), f"{name}.{field}"


def test_the_example_in_the_docs_is_valid() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/rules.md has no yaml example"
    data = yaml.safe_load(blocks[0])
    cfg = RulesConfig.model_validate(data["rules"])
    kinds = {rule.kind for entry in cfg.cameras for rule in entry.rules}
    assert kinds == {"zone_intrusion", "line_crossing", "loitering", "crowding", "camera_offline"}
