"""Plane geometry for the rules: ground points, point-in-polygon, line sides and segment crossings.

Coordinates are normalised image coordinates (0..1, origin top-left, ``y`` pointing down), the
same as the rules configuration (:mod:`pipeline.config.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]

EPSILON = 1e-12


def ground_point(box: Sequence[float], width: int, height: int) -> Point:
    """The bottom-centre of a pixel box ``[x1, y1, x2, y2]``, normalised by the frame size."""
    x1, _, x2, y2 = box[0], box[1], box[2], box[3]
    return ((x1 + x2) / 2.0 / width, y2 / height)


def cross(o: Point, a: Point, b: Point) -> float:
    """The z component of (a - o) × (b - o): > 0 when ``b`` is right of o→a on screen (y down)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def side_of_line(a: Point, b: Point, p: Point) -> int:
    """+1 when ``p`` is on the right of the arrow a→b as drawn on the image, -1 on its left, 0 on it.

    With ``y`` pointing down, "right" of an arrow pointing right (→) is below it.
    """
    value = cross(a, b, p)
    if value > EPSILON:
        return 1
    if value < -EPSILON:
        return -1
    return 0


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """``r`` (known collinear with p-q) lies within the bounding box of p-q."""
    return min(p[0], q[0]) - EPSILON <= r[0] <= max(p[0], q[0]) + EPSILON and (
        min(p[1], q[1]) - EPSILON <= r[1] <= max(p[1], q[1]) + EPSILON
    )


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when segments p1-p2 and q1-q2 share at least one point (touching counts)."""
    d1 = side_of_line(q1, q2, p1)
    d2 = side_of_line(q1, q2, p2)
    d3 = side_of_line(p1, p2, q1)
    d4 = side_of_line(p1, p2, q2)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd ray casting. Points exactly on an edge may fall either way."""
    x, y = p
    inside = False
    n = len(polygon)
    j = n - 1
    for i in range(n):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside
