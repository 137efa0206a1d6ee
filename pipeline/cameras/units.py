"""Administrative units: which unit covers which (a unit covers itself and every unit below it).

* numeric codes (GB/T 2260 area codes, GA police unit codes) are hierarchical by digit pairs, so trailing
  ``00`` pairs are dropped and the rest is a prefix: ``510000`` (a province) covers ``510104``;
  ``510100`` (a city) covers ``510104`` but not ``510200``;
* other names are paths: ``sichuan/chengdu`` covers ``sichuan/chengdu/wuhou``.
"""

from __future__ import annotations


def _unit_prefix(unit: str) -> str:
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
        return camera_unit.startswith(_unit_prefix(scope_unit))
    return camera_unit.startswith(scope_unit.rstrip("/") + "/")
