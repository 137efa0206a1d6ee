"""The rules engine's per-camera state survives a save and a load: an engine restored at any point of a
stream raises exactly the alerts an uninterrupted engine raises from there; a bad state is refused."""

from __future__ import annotations

import pytest

from pipeline.store.local import LocalStore
from tests.unit.test_rules_engine import (
    ALL_KINDS,
    CAM,
    H_LINE,
    ZONE,
    Obj,
    _scenario,
    config,
    detections,
    status,
)
from workers.rules.engine import RuleEngine
from workers.rules.state import RulesStateStore, state_from_json, state_to_json


def _messages() -> list:
    crowd = [detections(30 + i, [Obj(0.7, 0.6, track="a"), Obj(0.8, 0.7, track="b")]) for i in range(4)]
    return [*_scenario(), *crowd, status(40, "online"), status(41, "offline"), status(50, "reconnecting")]


@pytest.mark.parametrize("cut", range(1, 15))
def test_an_engine_restored_mid_stream_raises_the_same_alerts(cut: int, tmp_path) -> None:  # noqa: ANN001
    rules = config(ALL_KINDS, zones=ZONE, lines=[H_LINE])
    messages = _messages()
    whole = RuleEngine(rules)
    expected = [a for m in messages for a in whole.process(m)]
    assert len(expected) >= 6
    first = RuleEngine(rules)
    got = [a for m in messages[:cut] for a in first.process(m)]
    saved = RulesStateStore(LocalStore(tmp_path), "state/rules")
    state = first.camera_state(CAM)
    assert state is not None
    saved.save(CAM, "detections", state)
    second = RuleEngine(rules)
    loaded = saved.load(CAM, "detections")
    assert loaded is not None and state_to_json(CAM, loaded) == state_to_json(CAM, state)
    second.restore(CAM, loaded)
    got += [a for m in messages[cut - 1 :] for a in second.process(m)]  # the last message comes again: skipped
    assert got == expected


@pytest.mark.parametrize("damage", ["version", "camera", "garbage", "naive-time"])
def test_a_bad_state_is_refused(damage: str, tmp_path) -> None:  # noqa: ANN001
    engine = RuleEngine(config(ALL_KINDS, zones=ZONE, lines=[H_LINE]))
    for message in _messages()[:5]:
        engine.process(message)
    state = engine.camera_state(CAM)
    assert state is not None
    data = state_to_json(CAM, state)
    bad = {
        "version": data.replace(b'"version":1', b'"version":99'),
        "camera": data.replace(CAM.encode(), b"other-cam", 1),
        "garbage": b"\x80\x04not json",
        "naive-time": data.replace(b"+00:00", b""),
    }[damage]
    store = LocalStore(tmp_path)
    saved = RulesStateStore(store, "state/rules")
    store.put(saved.key(CAM, "detections"), bad)
    assert saved.load(CAM, "detections") is None and saved.refused == 1
    with pytest.raises((ValueError, KeyError, TypeError)):
        state_from_json(bad, CAM)
