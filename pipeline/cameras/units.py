"""Administrative units: the GB/T 2260 hierarchy (province → city → county → station) and which unit covers which
(a unit covers itself and every unit below it).

* numeric codes (GB/T 2260 area codes, GA police unit codes) are hierarchical by digit pairs, so trailing
  ``00`` pairs are dropped and the rest is a prefix: ``510000`` (a province) covers ``510104``;
  ``510100`` (a city) covers ``510104`` and the station ``51010401`` but not ``510200``;
* other names are paths: ``sichuan/chengdu`` covers ``sichuan/chengdu/wuhou``.

A camera's unit is its registry record's ``admin_unit``; when that is empty and the camera has a 20-digit GB/T
28181 ID (its ``gb_device_id``, or its ID itself), the ID's first eight digits are the unit of the station it
belongs to (GB/T 28181 Annex D: centre code = province 2 + city 2 + county 2 + station 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

GB_ID = re.compile(r"^[0-9]{20}$")
LEVELS = ("province", "city", "county", "station")


def unit_prefix(unit: str) -> str:
    """A numeric unit without its trailing ``00`` pairs (``510100`` → ``5101``); other units unchanged."""
    if unit.isdigit():
        trimmed = unit
        while len(trimmed) > 2 and trimmed.endswith("00"):
            trimmed = trimmed[:-2]
        return trimmed
    return unit


def unit_covers(scope_unit: str, camera_unit: str) -> bool:
    """True when ``camera_unit`` is ``scope_unit`` or lies below it."""
    if not scope_unit or not camera_unit:
        return False
    if scope_unit == camera_unit:
        return True
    if scope_unit.isdigit() and camera_unit.isdigit():
        return camera_unit.startswith(unit_prefix(scope_unit))
    return camera_unit.startswith(scope_unit.rstrip("/") + "/")


def gb_unit(gb_id: str | None) -> str:
    """The station unit (8 digits) of a 20-digit GB/T 28181 ID, or '' for anything else."""
    return gb_id[:8] if gb_id and GB_ID.fullmatch(gb_id) else ""


def camera_unit(admin_unit: str, camera_id: str, gb_device_id: str | None = None) -> str:
    """A camera's unit: its registry unit, else the one its GB/T 28181 ID encodes."""
    return admin_unit or gb_unit(gb_device_id) or gb_unit(camera_id)


def level_of(unit: str) -> str:
    """``province``, ``city``, ``county`` or ``station`` for a numeric code; ``unit`` for other names."""
    if not unit.isdigit():
        return "unit"
    pairs = max(1, len(unit_prefix(unit)) // 2)
    return LEVELS[min(pairs, 4) - 1]


def ancestors(unit: str) -> list[str]:
    """The unit's chain from its province down to itself, as 6-digit codes (8 for a station)."""
    if not unit.isdigit():
        parts = unit.split("/")
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]
    core = unit_prefix(unit)
    chain = []
    for end in range(2, len(core) + 1, 2):
        piece = core[:end]
        chain.append(piece.ljust(6, "0") if end <= 6 else piece)
    return chain


@dataclass
class UnitNode:
    code: str
    level: str
    cameras: list[str] = field(default_factory=list)
    children: dict[str, UnitNode] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "level": self.level, "cameras": sorted(self.cameras),
                "children": [c.as_dict() for _, c in sorted(self.children.items())]}


def unit_tree(cameras: Iterable[tuple[str, str]]) -> list[UnitNode]:
    """The unit tree of ``(camera_id, unit)`` pairs: provinces at the top, each camera at its own unit."""
    roots: dict[str, UnitNode] = {}
    for camera_id, unit in cameras:
        if not unit:
            continue
        chain = ancestors(unit)
        level = roots
        node: UnitNode | None = None
        for code in chain:
            node = level.setdefault(code, UnitNode(code, level_of(code)))
            level = node.children
        if node is not None:
            node.cameras.append(camera_id)
    return [roots[k] for k in sorted(roots)]
