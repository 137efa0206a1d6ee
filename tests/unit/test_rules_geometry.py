"""Geometry of the rules: the ground point of a box, point-in-polygon, line sides, segment intersection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.config.rules import RulesConfig
from pipeline.geometry import ground_point, point_in_polygon, segments_intersect, side_of_line
from schemas.detections import DetectedObject, Detections
from workers.rules.engine import RuleEngine

SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
CONCAVE = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.4), (0.1, 0.9)]  # a notch cut from the bottom


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((100, 50, 300, 400), (1000, 500), (0.2, 0.8)),
        ((0, 0, 1280, 720), (1280, 720), (0.5, 1.0)),
        ((10, 10, 10, 10), (100, 100), (0.1, 0.1)),
    ],
)
def test_ground_point_is_the_bottom_centre(box: tuple, size: tuple[int, int], expected: tuple) -> None:
    assert ground_point(box, *size) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((0.5, 0.5), SQUARE, True),
        ((0.1, 0.5), SQUARE, False),
        ((0.5, 0.9), SQUARE, False),
        ((0.79, 0.79), SQUARE, True),
        ((0.5, 0.2 - 1e-6), SQUARE, False),
        ((0.5, 0.7), CONCAVE, False),  # in the notch
        ((0.5, 0.3), CONCAVE, True),
        ((0.15, 0.8), CONCAVE, True),  # in the left lobe
        ((0.2, 0.8), CONCAVE, False),  # just right of the left lobe
    ],
)
def test_point_in_polygon(point: tuple, polygon: list, inside: bool) -> None:
    assert point_in_polygon(point, polygon) is inside


@pytest.mark.parametrize(
    ("a", "b", "p", "side"),
    [
        ((0, 0.5), (1, 0.5), (0.5, 0.9), 1),  # a→b points right: below (y down) is its right
        ((0, 0.5), (1, 0.5), (0.5, 0.1), -1),
        ((1, 0.5), (0, 0.5), (0.5, 0.9), -1),  # reversed arrow swaps the sides
        ((0.5, 0), (0.5, 1), (0.2, 0.5), 1),  # a→b points down: left of the screen is its right
        ((0, 0.5), (1, 0.5), (3, 0.5), 0),
    ],
)
def test_side_of_line(a: tuple, b: tuple, p: tuple, side: int) -> None:
    assert side_of_line(a, b, p) == side


@pytest.mark.parametrize(
    ("p1", "p2", "q1", "q2", "hit"),
    [
        ((0, 0), (1, 1), (0, 1), (1, 0), True),
        ((0, 0), (0.4, 0.4), (0, 1), (1, 0), False),  # stops short
        ((0, 0), (0.5, 0.5), (0, 1), (1, 0), True),  # ends on the other segment
        ((0, 0), (1, 0), (0, 1), (1, 1), False),  # parallel
        ((0, 0), (1, 0), (0.5, 0), (2, 0), True),  # collinear overlap
        ((0, 0), (1, 0), (1.5, 0), (2, 0), False),  # collinear apart
        ((0.9, 0.3), (0.9, 0.7), (0.2, 0.5), (0.8, 0.5), False),  # beside the end
    ],
)
def test_segments_intersect(p1: tuple, p2: tuple, q1: tuple, q2: tuple, hit: bool) -> None:
    assert segments_intersect(p1, p2, q1, q2) is hit
    assert segments_intersect(q1, q2, p1, p2) is hit


@pytest.mark.parametrize(
    ("box", "fires"),
    [
        ((450, 100, 550, 600), True),  # centre at y=0.35 is outside, feet at y=0.6 are inside
        ((450, 300, 550, 480), False),  # centre at y=0.39 and feet at y=0.48: both above the zone
    ],
)
def test_zones_use_the_ground_point_not_the_box_centre(box: tuple, fires: bool) -> None:
    cfg = RulesConfig.model_validate({"cameras": [{
        "camera_id": "c",
        "zones": [{"id": "floor", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
        "rules": [{"id": "r", "kind": "zone_intrusion", "zone": "floor"}],
    }]})
    det = Detections(
        camera_id="c", session="s", sequence=1, captured_at=datetime(2024, 1, 1, tzinfo=UTC),
        frame_width=1000, frame_height=1000, model_id="m@1",
        objects=(DetectedObject(box=box, class_name="person", class_id=0, score=0.9, track_id="c:s:1"),),
    )
    assert bool(RuleEngine(cfg).process(det)) is fires
