"""The rules that apply to one camera, resolved from the configuration into a flat, ready-to-run set.

A camera's rules are those of its own entry plus those of the ``"*"`` entry. Disabled rules are
dropped here. Zones and lines get an entry-qualified key (``cam-01/gate``, ``*/gate``) so the same
zone ID in a camera's entry and in the ``"*"`` entry never share state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config.rules import (
    CameraOfflineRule,
    CameraRules,
    CrowdingRule,
    LineCrossingRule,
    LoiteringRule,
    RulesConfig,
    ZoneIntrusionRule,
)
from pipeline.geometry import Point


@dataclass(frozen=True)
class CompiledZone:
    key: str
    id: str
    name: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class CompiledLine:
    key: str
    id: str
    name: str
    a: Point
    b: Point


@dataclass(frozen=True)
class RuleSet:
    """Enabled rules of one camera, each with its resolved zone or line."""

    camera_id: str
    intrusion: tuple[tuple[ZoneIntrusionRule, CompiledZone], ...] = ()
    loitering: tuple[tuple[LoiteringRule, CompiledZone], ...] = ()
    crossing: tuple[tuple[LineCrossingRule, CompiledLine], ...] = ()
    crowding: tuple[tuple[CrowdingRule, CompiledZone | None], ...] = ()
    offline: tuple[CameraOfflineRule, ...] = ()
    track_zones: tuple[CompiledZone, ...] = ()  # zones whose stays are tracked (intrusion, loitering)
    lines: tuple[CompiledLine, ...] = ()  # lines whose sides are tracked
    rules_by_zone: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def watches_objects(self) -> bool:
        return bool(self.intrusion or self.loitering or self.crossing or self.crowding)

    @property
    def all_rules(self) -> tuple[ZoneIntrusionRule | LoiteringRule | LineCrossingRule | CrowdingRule
                                 | CameraOfflineRule, ...]:
        return (
            *(r for r, _ in self.intrusion),
            *(r for r, _ in self.loitering),
            *(r for r, _ in self.crossing),
            *(r for r, _ in self.crowding),
            *self.offline,
        )


def _zone(entry: CameraRules, zone_id: str) -> CompiledZone:
    spec = entry.zone(zone_id)
    return CompiledZone(f"{entry.camera_id}/{spec.id}", spec.id, spec.name, tuple(spec.polygon))


def _line(entry: CameraRules, line_id: str) -> CompiledLine:
    spec = entry.line(line_id)
    return CompiledLine(f"{entry.camera_id}/{spec.id}", spec.id, spec.name, spec.a, spec.b)


def compile_rules(config: RulesConfig, camera_id: str) -> RuleSet:
    """The enabled rules for ``camera_id`` (its own entry first, then the ``"*"`` entry)."""
    intrusion: list[tuple[ZoneIntrusionRule, CompiledZone]] = []
    loitering: list[tuple[LoiteringRule, CompiledZone]] = []
    crossing: list[tuple[LineCrossingRule, CompiledLine]] = []
    crowding: list[tuple[CrowdingRule, CompiledZone | None]] = []
    offline: list[CameraOfflineRule] = []
    for entry in config.entries_for(camera_id):
        for rule in entry.rules:
            if not rule.enabled:
                continue
            if isinstance(rule, ZoneIntrusionRule):
                intrusion.append((rule, _zone(entry, rule.zone)))
            elif isinstance(rule, LoiteringRule):
                loitering.append((rule, _zone(entry, rule.zone)))
            elif isinstance(rule, LineCrossingRule):
                crossing.append((rule, _line(entry, rule.line)))
            elif isinstance(rule, CrowdingRule):
                crowding.append((rule, _zone(entry, rule.zone) if rule.zone else None))
            else:
                offline.append(rule)
    zones: dict[str, CompiledZone] = {}
    by_zone: dict[str, set[str]] = {}
    for zrule, zone in [*intrusion, *loitering]:
        zones.setdefault(zone.key, zone)
        by_zone.setdefault(zone.key, set()).add(zrule.id)
    lines = {line.key: line for _, line in crossing}
    return RuleSet(
        camera_id=camera_id,
        intrusion=tuple(intrusion),
        loitering=tuple(loitering),
        crossing=tuple(crossing),
        crowding=tuple(crowding),
        offline=tuple(offline),
        track_zones=tuple(zones.values()),
        lines=tuple(lines.values()),
        rules_by_zone={k: frozenset(v) for k, v in by_zone.items()},
    )
