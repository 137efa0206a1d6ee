"""The rule engine, rule kind by rule kind: table-driven paths of tracks through zones and across lines,
dwell and crowding timers just under and over their limits, offline grace periods, cool-downs and
deterministic alert IDs. No bus: messages in, alerts out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.config.rules import RulesConfig
from schemas.alerts import Alert
from schemas.cameras import CameraStatus
from schemas.common import format_utc
from schemas.detections import DetectedObject, Detections
from schemas.ids import stable_id
from workers.rules.engine import RuleEngine

CAM = "cam-01"
W = H = 1000
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
RIGHT_HALF = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
H_LINE = {"id": "stop", "name": "Stop line", "a": [0.2, 0.5], "b": [0.8, 0.5]}  # a→b points right


@dataclass(frozen=True)
class Obj:
    """One object in a frame, by its ground point (bottom-centre of the box), normalised."""

    x: float
    y: float
    track: str | None = "1"
    cls: str = "person"
    score: float = 0.9


def detections(t: float, objs: list[Obj], *, seq: int | None = None, camera: str = CAM) -> Detections:
    objects = []
    for o in objs:
        gx, gy = o.x * W, o.y * H
        box = (max(0.0, gx - 10), max(0.0, gy - 40), min(float(W), gx + 10), gy)
        track = None if o.track is None else f"{camera}:s1:{o.track}"
        objects.append(DetectedObject(box=box, class_name=o.cls, class_id=0, score=o.score, track_id=track))
    return Detections(
        camera_id=camera, session="s1", sequence=seq if seq is not None else round(t * 1000),
        captured_at=T0 + timedelta(seconds=t), frame_width=W, frame_height=H, model_id="test@1",
        objects=tuple(objects),
    )


def status(t: float, event: str, reason: str | None = None, camera: str = CAM) -> CameraStatus:
    if event == "stats":
        stats = {"window_seconds": 10.0, "fps_in": 0.0, "fps_out": 0.0, "bitrate_kbps": 0.0}
        return CameraStatus(camera_id=camera, observed_at=T0 + timedelta(seconds=t), event="stats", stats=stats)
    if event == "offline" and reason is None:
        reason = "timeout"
    return CameraStatus(camera_id=camera, observed_at=T0 + timedelta(seconds=t), event=event, reason=reason)


def config(rules: list[dict[str, Any]], *, zones: list | None = None, lines: list | None = None,
           camera: str = CAM, **top: Any) -> RulesConfig:
    entry = {"camera_id": camera, "zones": zones or [], "lines": lines or [], "rules": rules}
    return RulesConfig.model_validate({"cameras": [entry], **top})


def path(points: list[tuple[float, float]], *, step: float = 1.0, **obj: Any) -> list[Detections]:
    """One track following ``points``, one frame every ``step`` seconds."""
    return [detections(i * step, [Obj(x, y, **obj)]) for i, (x, y) in enumerate(points)]


def fired_at(engine: RuleEngine, messages: list[Detections | CameraStatus]) -> list[tuple[int, Alert]]:
    out = []
    for index, message in enumerate(messages):
        out += [(index, alert) for alert in engine.process(message)]
    return out


# -- zone intrusion ----------------------------------------------------------------------------------
ZONE = [{"id": "yard", "name": "Yard", "polygon": RIGHT_HALF}]


@pytest.mark.parametrize(
    ("case", "rule", "frames", "expected"),
    [
        ("enters the zone", {}, path([(0.2, 0.5), (0.4, 0.5), (0.7, 0.5), (0.8, 0.5)]), [2]),
        ("first seen inside", {}, path([(0.7, 0.5), (0.8, 0.5)]), [0]),
        ("stays outside", {}, path([(0.1, 0.5), (0.45, 0.9), (0.3, 0.2)]), []),
        ("enters and leaves: one alert", {}, path([(0.4, 0.5), (0.7, 0.5), (0.4, 0.5)]), [1]),
        ("class filtered out", {"classes": ["car"]}, path([(0.4, 0.5), (0.7, 0.5)]), []),
        ("class listed", {"classes": ["car", "person"]}, path([(0.4, 0.5), (0.7, 0.5)]), [1]),
        ("any class when none listed", {}, path([(0.4, 0.5), (0.7, 0.5)], cls="truck"), [1]),
        ("score below minimum", {"min_score": 0.95}, path([(0.4, 0.5), (0.7, 0.5)]), []),
        ("re-entry within cool-down", {"cooldown_s": 60},
         path([(0.4, 0.5), (0.7, 0.5), (0.4, 0.5), (0.7, 0.5)], step=10), [1]),
        ("re-entry after cool-down", {"cooldown_s": 15},
         path([(0.4, 0.5), (0.7, 0.5), (0.4, 0.5), (0.7, 0.5)], step=10), [1, 3]),
        ("disabled rule", {"enabled": False}, path([(0.4, 0.5), (0.7, 0.5)]), []),
    ],
)
def test_zone_intrusion(case: str, rule: dict, frames: list[Detections], expected: list[int]) -> None:
    engine = RuleEngine(config([{"id": "r-yard", "kind": "zone_intrusion", "zone": "yard", **rule}], zones=ZONE))
    got = fired_at(engine, frames)
    assert [i for i, _ in got] == expected, case
    for _, alert in got:
        assert alert.alert_type == "zone_intrusion" and alert.rule_id == "r-yard"
        assert alert.track_id == f"{CAM}:s1:1" and alert.details["zone"] == "yard"
        assert "Yard" in alert.message


def test_untracked_objects_raise_zone_intrusion_under_cool_down() -> None:
    frames = [detections(t, [Obj(0.7, 0.5, track=None), Obj(0.8, 0.5, track=None)]) for t in (0, 1, 2)]
    slow = RuleEngine(config([{"id": "r", "kind": "zone_intrusion", "zone": "yard"}], zones=ZONE))
    assert [(i, a.track_id) for i, a in fired_at(slow, frames)] == [(0, None)]
    fast = RuleEngine(config([{"id": "r", "kind": "zone_intrusion", "zone": "yard", "cooldown_s": 0}], zones=ZONE))
    assert [i for i, _ in fired_at(fast, frames)] == [0, 1, 2]  # one per rule and frame, not per object


def test_each_track_is_its_own_subject() -> None:
    engine = RuleEngine(config([{"id": "r", "kind": "zone_intrusion", "zone": "yard"}], zones=ZONE))
    frame = detections(0, [Obj(0.7, 0.5, track="1"), Obj(0.8, 0.5, track="2"), Obj(0.2, 0.5, track="3")])
    assert sorted(a.track_id or "" for a in engine.process(frame)) == [f"{CAM}:s1:1", f"{CAM}:s1:2"]


# -- line crossing -----------------------------------------------------------------------------------
DOWN = [(0.5, 0.3), (0.5, 0.45), (0.5, 0.55), (0.5, 0.7)]
UP = list(reversed(DOWN))


@pytest.mark.parametrize(
    ("case", "direction", "points", "expected"),
    [
        ("down, both", "both", DOWN, [(2, "a_to_b")]),
        ("up, both", "both", UP, [(2, "b_to_a")]),
        ("down is a_to_b (a→b points right)", "a_to_b", DOWN, [(2, "a_to_b")]),
        ("down is not b_to_a", "b_to_a", DOWN, []),
        ("up is b_to_a", "b_to_a", UP, [(2, "b_to_a")]),
        ("up is not a_to_b", "a_to_b", UP, []),
        ("passes beside the segment", "both", [(0.9, 0.3), (0.9, 0.7)], []),
        ("passes beside, left end", "both", [(0.1, 0.3), (0.15, 0.7)], []),
        ("crosses near the end", "both", [(0.79, 0.4), (0.79, 0.6)], [(1, "a_to_b")]),
        ("diagonal jump across", "both", [(0.1, 0.1), (0.9, 0.9)], [(1, "a_to_b")]),
        ("touches the line and turns back", "both", [(0.5, 0.4), (0.5, 0.5), (0.5, 0.4)], []),
        ("stops on the line, then crosses", "both", [(0.5, 0.4), (0.5, 0.5), (0.5, 0.6)], [(2, "a_to_b")]),
        ("walks along one side", "both", [(0.1, 0.4), (0.5, 0.45), (0.9, 0.4)], []),
        ("goes round the end", "both", [(0.5, 0.4), (0.9, 0.4), (0.9, 0.6), (0.5, 0.6)], []),
    ],
)
def test_line_crossing(case: str, direction: str, points: list, expected: list) -> None:
    rule = {"id": "r-stop", "kind": "line_crossing", "line": "stop", "direction": direction}
    engine = RuleEngine(config([rule], lines=[H_LINE]))
    got = fired_at(engine, path(points))
    assert [(i, a.details["direction"]) for i, a in got] == expected, case
    for _, alert in got:
        assert alert.alert_type == "line_crossing" and alert.details["line"] == "stop"
        assert "Stop line" in alert.message


@pytest.mark.parametrize(("cooldown", "expected"), [(60, [2]), (0, [2, 3, 4])])
def test_line_crossing_back_and_forth_respects_cool_down(cooldown: float, expected: list[int]) -> None:
    rule = {"id": "r", "kind": "line_crossing", "line": "stop", "cooldown_s": cooldown}
    engine = RuleEngine(config([rule], lines=[H_LINE]))
    points = [(0.5, 0.3), (0.5, 0.4), (0.5, 0.6), (0.5, 0.4), (0.5, 0.6)]
    assert [i for i, _ in fired_at(engine, path(points))] == expected


def test_untracked_objects_never_cross_lines() -> None:
    engine = RuleEngine(config([{"id": "r", "kind": "line_crossing", "line": "stop"}], lines=[H_LINE]))
    assert fired_at(engine, path(DOWN, track=None)) == []


def test_a_track_lost_longer_than_the_timeout_starts_afresh() -> None:
    engine = RuleEngine(config([{"id": "r", "kind": "line_crossing", "line": "stop"}], lines=[H_LINE],
                               track_timeout_s=5))
    frames = [detections(0, [Obj(0.5, 0.4)]), detections(6, [Obj(0.5, 0.6)])]  # 6 s gap > 5 s timeout
    assert fired_at(engine, frames) == []


# -- loitering ---------------------------------------------------------------------------------------
def _inside(ts: list[float], x: float = 0.7) -> list[Detections]:
    return [detections(t, [Obj(x, 0.5)]) for t in ts]


@pytest.mark.parametrize(
    ("case", "frames", "expected"),
    [
        ("just under T", _inside([0, 2, 4, 6, 8, 9.9]), []),
        ("exactly T", _inside([0, 5, 10]), [(2, 10.0)]),
        ("just over T, once per stay", _inside([0, 5, 10.1, 15, 20, 30]), [(2, 10.1)]),
        ("dwell counts from entry", _inside([0, 4], x=0.3) + _inside([5, 10, 14.9, 15]), [(5, 10.0)]),
        ("leaving resets the dwell",
         _inside([0, 6]) + _inside([7], x=0.2) + _inside([8, 12, 17.9, 18]), [(6, 10.0)]),
        ("outside never loiters", _inside([0, 10, 20], x=0.2), []),
    ],
)
def test_loitering(case: str, frames: list[Detections], expected: list[tuple[int, float]]) -> None:
    rule = {"id": "r-loiter", "kind": "loitering", "zone": "yard", "dwell_s": 10, "cooldown_s": 0}
    engine = RuleEngine(config([rule], zones=ZONE))
    got = fired_at(engine, frames)
    assert [(i, a.details["dwell_seconds"]) for i, a in got] == expected, case
    for _, alert in got:
        assert alert.alert_type == "loitering" and alert.track_id == f"{CAM}:s1:1"


def test_loitering_fires_again_for_a_new_stay_only_after_the_cool_down() -> None:
    stays = _inside([0, 10]) + _inside([11], x=0.2) + _inside([12, 22]) + _inside([23], x=0.2) + _inside([90, 100])
    rule = {"id": "r", "kind": "loitering", "zone": "yard", "dwell_s": 10, "cooldown_s": 60}
    engine = RuleEngine(config([rule], zones=ZONE))
    assert [i for i, _ in fired_at(engine, stays)] == [1, 7]  # the stay at 12–22 s is within the cool-down


# -- crowding ----------------------------------------------------------------------------------------
def crowd(counts: list[int], *, step: float = 1.0, x: float = 0.7) -> list[Detections]:
    return [detections(i * step, [Obj(x, 0.1 + 0.05 * k, track=str(k)) for k in range(n)]) for i, n in enumerate(counts)]


@pytest.mark.parametrize(
    ("case", "rule", "frames", "expected"),
    [
        ("held for S", {}, crowd([3, 3, 3, 3, 3, 3]), [(5, 3)]),
        ("just under S", {}, crowd([3, 3, 3, 3, 4]), []),
        ("below N", {}, crowd([2] * 10), []),
        ("a dip restarts the timer", {}, crowd([3, 3, 3, 2, 3, 3, 3, 3, 3, 3]), [(9, 3)]),
        ("fires once while it lasts", {}, crowd([3] * 20), [(5, 3)]),
        ("no duration: first frame", {"duration_s": 0}, crowd([1, 3, 3]), [(1, 3)]),
        ("zone: outside objects do not count", {"zone": "yard"}, crowd([3] * 8, x=0.3), []),
        ("zone: inside objects count", {"zone": "yard"}, crowd([4] * 8), [(5, 4)]),
        ("class filter", {"classes": ["car"]}, crowd([5] * 8), []),
        ("over again after the cool-down", {"cooldown_s": 10},
         crowd([3] * 6 + [0] + [3] * 6 + [0] + [3] * 6), [(5, 3), (19, 3)]),
    ],
)
def test_crowding(case: str, rule: dict, frames: list[Detections], expected: list[tuple[int, int]]) -> None:
    spec = {"id": "r-crowd", "kind": "crowding", "min_count": 3, "duration_s": 5, **rule}
    engine = RuleEngine(config([spec], zones=ZONE))
    got = fired_at(engine, frames)
    assert [(i, a.details["count"]) for i, a in got] == expected, case
    for _, alert in got:
        assert alert.alert_type == "crowding" and alert.track_id is None


# -- camera offline ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "events", "expected"),
    [
        ("offline past the grace period", [(0, "offline"), (10, "reconnecting"), (31, "reconnecting")], [2]),
        ("offline exactly the grace period", [(0, "offline"), (30, "stats")], [1]),
        ("back online within grace", [(0, "offline"), (20, "online"), (40, "stats"), (90, "stats")], []),
        ("still within grace", [(0, "offline"), (10, "reconnecting"), (29.9, "stats")], []),
        ("reconnecting alone arms the timer", [(0, "reconnecting"), (35, "reconnecting")], [1]),
        ("stopped on purpose", [(0, "offline:stopped"), (60, "stats")], []),
        ("fires once per outage", [(0, "offline"), (31, "stats"), (62, "stats"), (93, "reconnecting")], [1]),
        ("a second outage after the cool-down",
         [(0, "offline"), (31, "stats"), (40, "online"), (400, "offline"), (431, "stats")], [1, 4]),
        ("a second outage within the cool-down",
         [(0, "offline"), (31, "stats"), (40, "online"), (100, "offline"), (131, "stats")], [1]),
        ("stale event ignored", [(0, "offline"), (20, "online"), (10, "offline"), (45, "stats")], []),
    ],
)
def test_camera_offline(case: str, events: list[tuple[float, str]], expected: list[int]) -> None:
    engine = RuleEngine(config([{"id": "r-off", "kind": "camera_offline", "grace_s": 30, "cooldown_s": 300,
                                 "severity": "high"}]))
    messages = []
    for t, event in events:
        name, _, reason = event.partition(":")
        messages.append(status(t, name, reason or None))
    got = fired_at(engine, messages)
    assert [i for i, _ in got] == expected, case
    for _, alert in got:
        assert alert.alert_type == "camera_offline" and alert.severity == "high" and alert.track_id is None


def test_offline_alert_is_dated_at_the_end_of_the_grace_period() -> None:
    engine = RuleEngine(config([{"id": "r-off", "kind": "camera_offline", "grace_s": 30}]))
    engine.process(status(5, "offline", "network"))
    (alert,) = engine.process(status(50, "reconnecting"))
    assert alert.occurred_at == T0 + timedelta(seconds=35)
    assert alert.details["offline_since"] == format_utc(T0 + timedelta(seconds=5))
    assert alert.details["reason"] == "network" and "network" in alert.message


def test_wall_clock_advance_fires_a_silent_camera() -> None:
    engine = RuleEngine(config([{"id": "r-off", "kind": "camera_offline", "grace_s": 30}]))
    assert engine.process(status(0, "offline")) == []
    assert engine.advance(T0 + timedelta(seconds=29)) == []
    (alert,) = engine.advance(T0 + timedelta(seconds=31))
    assert alert.occurred_at == T0 + timedelta(seconds=30)
    assert engine.advance(T0 + timedelta(seconds=40)) == []


def test_offline_rules_from_the_all_cameras_entry_watch_every_camera() -> None:
    cfg = RulesConfig.model_validate({"cameras": [
        {"camera_id": "*", "rules": [{"id": "any-off", "kind": "camera_offline", "grace_s": 10}]},
        {"camera_id": "cam-02", "rules": [{"id": "c2-off", "kind": "camera_offline", "grace_s": 5}]},
    ]})
    engine = RuleEngine(cfg)
    for cam in ("cam-01", "cam-02", "x9"):
        engine.process(status(0, "offline", camera=cam))
    got = engine.advance(T0 + timedelta(seconds=11))
    assert sorted((a.camera_id, a.rule_id) for a in got) == [
        ("cam-01", "any-off"), ("cam-02", "any-off"), ("cam-02", "c2-off"), ("x9", "any-off")]


def test_cameras_without_rules_keep_no_state() -> None:
    engine = RuleEngine(config([{"id": "r", "kind": "zone_intrusion", "zone": "yard"}], zones=ZONE))
    assert engine.process(detections(0, [Obj(0.7, 0.5)], camera="other")) == []
    assert engine.process(status(0, "offline", camera="other")) == []
    assert engine.camera_state("other") is None


# -- determinism, stale input ------------------------------------------------------------------------
ALL_KINDS = [
    {"id": "k-zone", "kind": "zone_intrusion", "zone": "yard"},
    {"id": "k-line", "kind": "line_crossing", "line": "stop"},
    {"id": "k-loiter", "kind": "loitering", "zone": "yard", "dwell_s": 2},
    {"id": "k-crowd", "kind": "crowding", "min_count": 1, "duration_s": 1},
    {"id": "k-off", "kind": "camera_offline", "grace_s": 3},
]


def _scenario() -> list[Detections | CameraStatus]:
    walk: list[Detections | CameraStatus] = path([(0.3, 0.3), (0.6, 0.4), (0.6, 0.6), (0.7, 0.7), (0.7, 0.8)])
    return [*walk, status(10, "offline"), status(20, "reconnecting")]


def test_replaying_the_same_messages_gives_the_same_alert_ids() -> None:
    def run() -> list[Alert]:
        engine = RuleEngine(config(ALL_KINDS, zones=ZONE, lines=[H_LINE]))
        return [alert for message in _scenario() for alert in engine.process(message)]

    first, second = run(), run()
    assert {a.alert_type for a in first} == {"zone_intrusion", "line_crossing", "loitering", "crowding",
                                             "camera_offline"}
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert len({a.alert_id for a in first}) == len(first)
    for alert in first:
        subject = alert.track_id or "camera"
        assert alert.alert_id == stable_id(alert.rule_id, alert.camera_id, subject, format_utc(alert.occurred_at))


def test_alert_id_changes_with_the_event_time() -> None:
    def first_alert(t: float) -> Alert:
        engine = RuleEngine(config([ALL_KINDS[0]], zones=ZONE))
        (alert,) = engine.process(detections(t, [Obj(0.7, 0.5)]))
        return alert

    assert first_alert(1.0).alert_id == first_alert(1.0).alert_id
    assert first_alert(1.0).alert_id != first_alert(1.5).alert_id


def test_a_redelivered_or_older_frame_is_skipped() -> None:
    engine = RuleEngine(config([{"id": "r", "kind": "zone_intrusion", "zone": "yard", "cooldown_s": 0}], zones=ZONE))
    inside = detections(5, [Obj(0.7, 0.5, track=None)], seq=5)
    assert len(engine.process(inside)) == 1
    assert engine.process(inside) == []  # the same frame again
    assert engine.process(detections(4, [Obj(0.7, 0.5, track=None)], seq=4)) == []  # an older one
    assert engine.stats.stale == 2
    assert len(engine.process(detections(6, [Obj(0.7, 0.5, track=None)], seq=6))) == 1


def test_track_memory_is_bounded() -> None:
    engine = RuleEngine(config([{"id": "r", "kind": "zone_intrusion", "zone": "yard"}], zones=ZONE,
                               max_tracks_per_camera=10))
    for i in range(30):
        engine.process(detections(i * 0.1, [Obj(0.2, 0.5, track=str(i))]))
    state = engine.camera_state(CAM)
    assert state is not None and len(state.tracks) == 10 and engine.stats.tracks_evicted == 20
