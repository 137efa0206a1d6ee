"""The rule engine: detections and camera-status events in, :class:`schemas.alerts.Alert` objects out.

Pure and synchronous: no bus, no clock of its own. Feed it messages in stream order with
:meth:`RuleEngine.process` (or ``process_detections`` / ``process_status``); call
:meth:`RuleEngine.advance` with the wall clock when the input is caught up, so that a camera that
went silent still gets its ``camera_offline`` alert. Everything is decided in **event time**
(``captured_at`` of frames, ``observed_at`` of status events), so replaying the same messages into a
fresh engine yields the same alerts with the same IDs.

Per camera the engine owns: the live tracks (last ground point, when each zone stay began, the side of
each line the track was last on, which rules already fired for the current stay), the crowding timers,
the offline timer and the cool-down clock per (rule, subject). The rules worker saves that state per
camera (:mod:`workers.rules.state`) and a restarted worker continues from it (:meth:`RuleEngine.restore`);
messages at or before the state's last frame or status event are skipped as stale.

Alert IDs are ``stable_id(rule, camera, subject, event time)`` where the subject is the track ID, or
``camera`` for camera-level alerts (crowding, camera offline), or ``untracked`` for zone intrusions of
objects without a track ID.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pipeline.config.rules import (
    CameraOfflineRule,
    CrowdingRule,
    LineCrossingRule,
    LineSpec,
    LoiteringRule,
    RulesConfig,
    ZoneIntrusionRule,
    ZoneSpec,
)
from pipeline.geometry import Point, ground_point, point_in_polygon, segments_intersect, side_of_line
from schemas.alerts import Alert
from schemas.cameras import CameraStatus
from schemas.common import format_utc
from schemas.detections import DetectedObject, Detections
from schemas.ids import stable_id
from workers.rules.compiled import CompiledLine, CompiledZone, RuleSet, compile_rules

log = logging.getLogger(__name__)

SUBJECT_CAMERA = "camera"
SUBJECT_UNTRACKED = "untracked"

AnyRule = ZoneIntrusionRule | LineCrossingRule | LoiteringRule | CrowdingRule | CameraOfflineRule
ObjectRule = ZoneIntrusionRule | LineCrossingRule | LoiteringRule | CrowdingRule
Details = dict[str, str | int | float | bool | None]


@dataclass
class TrackState:
    """What the engine remembers about one live track."""

    last_seen: datetime
    point: Point
    entered: dict[str, datetime] = field(default_factory=dict)  # zone key -> start of the current stay
    fired: set[str] = field(default_factory=set)  # rule ids fired during the current stay
    sides: dict[str, tuple[int, Point]] = field(default_factory=dict)  # line key -> (side, point there)


@dataclass
class CrowdState:
    since: datetime | None = None
    fired: bool = False


@dataclass
class CameraState:
    """Everything the engine knows about one camera."""

    last_frame: tuple[datetime, str, int] | None = None
    last_status_at: datetime | None = None
    tracks: OrderedDict[str, TrackState] = field(default_factory=OrderedDict)  # least recently seen first
    crowds: dict[str, CrowdState] = field(default_factory=dict)
    offline_since: datetime | None = None
    offline_reason: str | None = None
    offline_fired: set[str] = field(default_factory=set)
    cooldowns: dict[tuple[str, str], datetime] = field(default_factory=dict)


@dataclass
class EngineStats:
    alerts: int = 0
    suppressed: int = 0  # by cool-down
    stale: int = 0  # frames or status events older than one already processed
    tracks_evicted: int = 0


@dataclass(frozen=True)
class _Observation:
    obj: DetectedObject
    point: Point


def _matches(rule: ObjectRule, obj: DetectedObject) -> bool:
    return (not rule.classes or obj.class_name in rule.classes) and obj.score >= rule.min_score


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


class RuleEngine:
    """Evaluates the configured rules over detections and camera-status events, per camera."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self._rulesets: dict[str, RuleSet] = {}
        self._cameras: dict[str, CameraState] = {}
        self.stats = EngineStats()

    # -- public API ----------------------------------------------------------------------------
    def process(self, message: Detections | CameraStatus) -> list[Alert]:
        """Alerts raised by one message (detections of a frame, or a camera status event)."""
        if isinstance(message, Detections):
            return self.process_detections(message)
        return self.process_status(message)

    def process_detections(self, det: Detections) -> list[Alert]:
        rules = self.ruleset(det.camera_id)
        if not rules.watches_objects:
            return []
        state = self._state(det.camera_id)
        frame_key = (det.captured_at, det.session, det.sequence)
        if state.last_frame is not None and (det.captured_at < state.last_frame[0] or frame_key == state.last_frame):
            self.stats.stale += 1
            log.debug("camera %s: skipping stale frame %s/%d", det.camera_id, det.session, det.sequence)
            return []
        state.last_frame = frame_key
        now = det.captured_at
        self._expire_tracks(state, now)
        observations = [
            _Observation(obj, ground_point(obj.box, det.frame_width, det.frame_height)) for obj in det.objects
        ]
        alerts: list[Alert] = []
        untracked_fired: set[str] = set()
        tracks_matter = bool(rules.intrusion or rules.loitering or rules.crossing)
        for ob in observations:
            if ob.obj.track_id is None:
                alerts += self._untracked(rules, state, det, ob, untracked_fired)
            elif tracks_matter:
                alerts += self._track(rules, state, det, ob)
        alerts += self._crowding(rules, state, det, observations)
        return alerts

    def process_status(self, status: CameraStatus) -> list[Alert]:
        rules = self.ruleset(status.camera_id)
        if not rules.offline:
            return []
        state = self._state(status.camera_id)
        if state.last_status_at is not None and status.observed_at < state.last_status_at:
            self.stats.stale += 1
            return []
        state.last_status_at = status.observed_at
        if status.event == "online":
            state.offline_since, state.offline_reason = None, None
            state.offline_fired.clear()
        elif status.event in ("offline", "reconnecting") and state.offline_since is None:
            # "reconnecting" arms the timer too: after a restart the offline event may be behind us.
            state.offline_since, state.offline_reason = status.observed_at, status.reason
            state.offline_fired.clear()
        return self._check_offline(status.camera_id, rules, state, status.observed_at)

    def advance(self, now: datetime) -> list[Alert]:
        """Fire offline timers that expired by ``now`` (the wall clock, when the input is caught up)."""
        alerts: list[Alert] = []
        for camera_id, state in self._cameras.items():
            if state.offline_since is not None:
                alerts += self._check_offline(camera_id, self.ruleset(camera_id), state, now)
        return alerts

    def replace_rules(self, config: RulesConfig) -> None:
        """Swap in new rules (an admin saved the rules document): tracks, timers and cool-downs are kept, so a
        track already inside an unchanged zone raises nothing new; a new zone is entered by what stands in it."""
        self.config = config
        self._rulesets = {}

    def reset(self) -> None:
        """Forget every camera's state (tracks, timers, cool-downs)."""
        self._cameras.clear()

    def restore(self, camera_id: str, state: CameraState) -> None:
        """Continue ``camera_id`` from a saved state (see :mod:`workers.rules.state`)."""
        self._cameras[camera_id] = state

    def watches(self, camera_id: str) -> bool:
        """True when some rule keeps state for this camera (objects or camera offline)."""
        rules = self.ruleset(camera_id)
        return bool(rules.watches_objects or rules.offline)

    def forget(self, camera_id: str) -> None:
        """Forget one camera's state (its partition moved to another worker)."""
        self._cameras.pop(camera_id, None)

    def ruleset(self, camera_id: str) -> RuleSet:
        rules = self._rulesets.get(camera_id)
        if rules is None:
            rules = self._rulesets[camera_id] = compile_rules(self.config, camera_id)
        return rules

    def camera_state(self, camera_id: str) -> CameraState | None:
        return self._cameras.get(camera_id)

    # -- state ---------------------------------------------------------------------------------
    def _state(self, camera_id: str) -> CameraState:
        state = self._cameras.get(camera_id)
        if state is None:
            state = self._cameras[camera_id] = CameraState()
        return state

    def _expire_tracks(self, state: CameraState, now: datetime) -> None:
        timeout = timedelta(seconds=self.config.track_timeout_s)
        while state.tracks:
            track_id, track = next(iter(state.tracks.items()))
            if now - track.last_seen <= timeout:
                break
            del state.tracks[track_id]
        if len(state.cooldowns) > 4 * self.config.max_tracks_per_camera:
            self._prune_cooldowns(state, now)

    def _prune_cooldowns(self, state: CameraState, now: datetime) -> None:
        longest = max((r.cooldown_s for rs in self._rulesets.values() for r in rs.all_rules), default=0.0)
        horizon = now - timedelta(seconds=longest)
        state.cooldowns = {k: t for k, t in state.cooldowns.items() if t > horizon}

    def _track_state(self, state: CameraState, track_id: str, ob: _Observation, now: datetime) -> TrackState:
        track = state.tracks.get(track_id)
        if track is None:
            track = state.tracks[track_id] = TrackState(last_seen=now, point=ob.point)
            while len(state.tracks) > self.config.max_tracks_per_camera:
                state.tracks.popitem(last=False)
                self.stats.tracks_evicted += 1
        else:
            state.tracks.move_to_end(track_id)
        return track

    # -- object rules --------------------------------------------------------------------------
    def _track(self, rules: RuleSet, state: CameraState, det: Detections, ob: _Observation) -> list[Alert]:
        assert ob.obj.track_id is not None
        now = det.captured_at
        track = self._track_state(state, ob.obj.track_id, ob, now)
        self._update_zones(rules, track, ob.point, now)
        crossings = self._update_lines(rules, track, ob.point)
        track.point, track.last_seen = ob.point, now
        alerts: list[Alert] = []
        for irule, zone in rules.intrusion:
            if zone.key in track.entered and irule.id not in track.fired and _matches(irule, ob.obj):
                track.fired.add(irule.id)
                alerts += self._fire(irule, state, det, ob, zone=zone)
        for lrule, zone in rules.loitering:
            start = track.entered.get(zone.key)
            if start is None or lrule.id in track.fired or not _matches(lrule, ob.obj):
                continue
            dwell = _seconds(now - start)
            if dwell >= lrule.dwell_s:
                track.fired.add(lrule.id)
                alerts += self._fire(lrule, state, det, ob, zone=zone, dwell_s=dwell)
        for crule, line in rules.crossing:
            direction = crossings.get(line.key)
            if direction and crule.direction in ("both", direction) and _matches(crule, ob.obj):
                alerts += self._fire(crule, state, det, ob, line=line, direction=direction)
        return alerts

    @staticmethod
    def _update_zones(rules: RuleSet, track: TrackState, point: Point, now: datetime) -> None:
        for zone in rules.track_zones:
            if point_in_polygon(point, zone.polygon):
                track.entered.setdefault(zone.key, now)
            elif track.entered.pop(zone.key, None) is not None:
                track.fired -= rules.rules_by_zone[zone.key]

    @staticmethod
    def _update_lines(rules: RuleSet, track: TrackState, point: Point) -> dict[str, str]:
        """Lines crossed since the track's last observation on either side: line key -> direction."""
        crossings: dict[str, str] = {}
        for line in rules.lines:
            side = side_of_line(line.a, line.b, point)
            if side == 0:
                continue  # on the line: wait until it is clearly on one side
            previous = track.sides.get(line.key)
            if previous is not None and previous[0] != side and segments_intersect(previous[1], point, line.a, line.b):
                crossings[line.key] = "a_to_b" if previous[0] < 0 else "b_to_a"
            track.sides[line.key] = (side, point)
        return crossings

    def _untracked(
        self, rules: RuleSet, state: CameraState, det: Detections, ob: _Observation, fired: set[str]
    ) -> list[Alert]:
        """Objects without a track ID: zone intrusion only, at most once per rule and frame (cool-down applies)."""
        alerts: list[Alert] = []
        for rule, zone in rules.intrusion:
            if rule.id in fired or not _matches(rule, ob.obj) or not point_in_polygon(ob.point, zone.polygon):
                continue
            fired.add(rule.id)
            alerts += self._fire(rule, state, det, ob, zone=zone)
        return alerts

    def _crowding(
        self, rules: RuleSet, state: CameraState, det: Detections, observations: list[_Observation]
    ) -> list[Alert]:
        alerts: list[Alert] = []
        now = det.captured_at
        for rule, zone in rules.crowding:
            count = sum(
                1
                for ob in observations
                if _matches(rule, ob.obj) and (zone is None or point_in_polygon(ob.point, zone.polygon))
            )
            crowd = state.crowds.setdefault(rule.id, CrowdState())
            if count < rule.min_count:
                crowd.since, crowd.fired = None, False
                continue
            if crowd.since is None:
                crowd.since = now
            held = _seconds(now - crowd.since)
            if not crowd.fired and held >= rule.duration_s:
                crowd.fired = True
                alerts += self._fire_camera(
                    rule, state, det.camera_id, now, _crowding_message(rule, zone, count, held),
                    {"zone": zone.id if zone else None, "count": count, "min_count": rule.min_count,
                     "duration_seconds": round(held, 3), "session": det.session, "sequence": det.sequence},
                )
        return alerts

    # -- camera rules --------------------------------------------------------------------------
    def _check_offline(self, camera_id: str, rules: RuleSet, state: CameraState, now: datetime) -> list[Alert]:
        since = state.offline_since
        if since is None:
            return []
        alerts: list[Alert] = []
        for rule in rules.offline:
            if rule.id in state.offline_fired or _seconds(now - since) < rule.grace_s:
                continue
            if state.offline_reason in rule.ignore_reasons:
                continue
            state.offline_fired.add(rule.id)
            at = since + timedelta(seconds=rule.grace_s)
            reason = state.offline_reason or "unknown"
            message = f"camera {camera_id} offline for {rule.grace_s:g} s (reason: {reason})"
            details: Details = {
                "offline_since": format_utc(since), "grace_seconds": rule.grace_s, "reason": reason,
            }
            alerts += self._fire_camera(rule, state, camera_id, at, message, details)
        return alerts

    # -- alerts --------------------------------------------------------------------------------
    def _cooled_down(self, rule: AnyRule, state: CameraState, subject: str, at: datetime) -> bool:
        key = (rule.id, subject)
        last = state.cooldowns.get(key)
        if last is not None and _seconds(at - last) < rule.cooldown_s:
            self.stats.suppressed += 1
            log.debug("rule %s subject %s: suppressed by cool-down", rule.id, subject)
            return False
        state.cooldowns[key] = at
        return True

    def _fire(
        self,
        rule: ZoneIntrusionRule | LoiteringRule | LineCrossingRule,
        state: CameraState,
        det: Detections,
        ob: _Observation,
        *,
        zone: CompiledZone | None = None,
        line: CompiledLine | None = None,
        direction: str | None = None,
        dwell_s: float | None = None,
    ) -> list[Alert]:
        track_id = ob.obj.track_id
        subject = track_id or SUBJECT_UNTRACKED
        if not self._cooled_down(rule, state, subject, det.captured_at):
            return []
        details: Details = {
            "class_name": ob.obj.class_name,
            "score": round(ob.obj.score, 4),
            "x": round(ob.point[0], 4),
            "y": round(ob.point[1], 4),
            "session": det.session,
            "sequence": det.sequence,
        }
        if zone is not None:
            details["zone"] = zone.id
        if line is not None:
            details["line"] = line.id
            details["direction"] = direction
        if dwell_s is not None:
            details["dwell_seconds"] = round(dwell_s, 3)
        message = _object_message(rule, ob.obj, zone, line, direction, dwell_s)
        return [self._alert(rule, det.camera_id, subject, det.captured_at, track_id, message, details)]

    def _fire_camera(
        self,
        rule: CrowdingRule | CameraOfflineRule,
        state: CameraState,
        camera_id: str,
        at: datetime,
        message: str,
        details: Details,
    ) -> list[Alert]:
        if not self._cooled_down(rule, state, SUBJECT_CAMERA, at):
            return []
        return [self._alert(rule, camera_id, SUBJECT_CAMERA, at, None, message, details)]

    def _alert(
        self,
        rule: AnyRule,
        camera_id: str,
        subject: str,
        at: datetime,
        track_id: str | None,
        message: str,
        details: Details,
    ) -> Alert:
        self.stats.alerts += 1
        if rule.name:
            details = {**details, "rule_name": rule.name}
        return Alert(
            alert_id=stable_id(rule.id, camera_id, subject, format_utc(at)),
            alert_type=rule.kind,
            camera_id=camera_id,
            occurred_at=at,
            severity=rule.severity,
            rule_id=rule.id,
            track_id=track_id,
            message=message[:500],
            details=details,
        )


def _label(spec: ZoneSpec | LineSpec | CompiledZone | CompiledLine) -> str:
    return spec.name or spec.id


def _object_message(
    rule: AnyRule,
    obj: DetectedObject,
    zone: CompiledZone | None,
    line: CompiledLine | None,
    direction: str | None,
    dwell_s: float | None,
) -> str:
    if isinstance(rule, LoiteringRule) and zone is not None and dwell_s is not None:
        return f"{obj.class_name} loitering in zone '{_label(zone)}' for {dwell_s:.0f} s (limit {rule.dwell_s:g} s)"
    if line is not None:
        arrow = "a→b" if direction == "a_to_b" else "b→a"
        return f"{obj.class_name} crossed line '{_label(line)}' ({arrow})"
    where = f"zone '{_label(zone)}'" if zone is not None else "a zone"
    return f"{obj.class_name} entered {where}"


def _crowding_message(rule: CrowdingRule, zone: CompiledZone | None, count: int, held_s: float) -> str:
    where = f"zone '{_label(zone)}'" if zone is not None else "the frame"
    what = "/".join(rule.classes) if rule.classes else "objects"
    return f"{count} {what} in {where} for {held_s:.0f} s (threshold {rule.min_count})"
