"""The recordings timeline: spans and gaps, events, segment playback as a view (operators too), range exports.

Over the fake search and real recordings written like the ingest recorder writes them (H.264 segments, and an
MPEG-4 part 2 camera whose playback is transcoded).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient

from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.recordings import load_index, save_index
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import (
    T0,
    FakeAnalyzer,
    add_users,
    login,
    register_cameras,
    sample_search,
    write_recording,
)
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import build_context
from workers.api.routes_timeline import merge_spans


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, LocalStore]]:
    tmp = tmp_path_factory.mktemp("timeline")
    store = LocalStore(tmp / "store")
    register_cameras(store)
    add_users(store)
    write_recording(store, "cam-a", T0 - timedelta(seconds=20), 12)  # 3 segments, then a gap
    before = load_index(store, "recordings", "cam-a", T0.date().isoformat())
    write_recording(store, "cam-a", T0 + timedelta(seconds=30), 8)  # (writes the day's index anew)
    after = load_index(store, "recordings", "cam-a", T0.date().isoformat())
    save_index(store, "recordings", "cam-a", T0.date().isoformat(), before + after)
    write_recording(store, "cam-b", T0, 4, codec="mpeg4")
    ctx = build_context(TubelineConfig(), store=store, search=sample_search(), face_analyzer_factory=FakeAnalyzer,
                        audit_writer="test", api=ApiConfig(cache_dir=str(tmp / "cache")))
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c, store


def window(**extra: str) -> dict[str, str]:
    return {"start": (T0 - timedelta(hours=1)).isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(), **extra}


def test_spans_gaps_segments_and_events(client) -> None:  # noqa: ANN001
    c, store = client
    login(c, "otto")
    body = c.get("/api/recordings/cam-a/timeline", params=window()).json()
    assert [(s["start"], s["end"]) for s in body["spans"]] == [
        ((T0 - timedelta(seconds=20)).isoformat(), (T0 - timedelta(seconds=8)).isoformat()),
        ((T0 + timedelta(seconds=30)).isoformat(), (T0 + timedelta(seconds=38)).isoformat())]
    assert body["gaps"] == [{"start": (T0 - timedelta(seconds=8)).isoformat(), "end": (T0 + timedelta(seconds=30)).isoformat()}]
    assert len(body["segments"]) == 5 and not body["can_export"]
    kinds = sorted({e["kind"] for e in body["events"]})
    assert kinds == ["alert", "plate", "track"]
    assert tail(store, 1)[0]["action"] == "recordings.timeline" and tail(store, 1)[0]["user"] == "otto"


def test_operator_plays_a_segment_as_an_audited_view(client) -> None:  # noqa: ANN001
    c, store = client
    login(c, "otto")
    seg = c.get("/api/recordings/cam-a/timeline", params=window()).json()["segments"][1]
    r = c.get(seg["url"])
    assert r.status_code == 200 and r.headers["x-transcoded"] == "false" and r.content[4:8] == b"ftyp"
    entry = tail(store, 1)[0]
    assert entry["action"] == "recordings.play" and entry["user"] == "otto" and entry["status"] == 200
    path = Path(c.app.state.ctx.api.cache_dir) / "playback" / "cam-a"
    with av.open(str(next(path.glob("*.mp4")))) as f:
        assert f.streams.video[0].codec_context.name == "h264" and 3.5 < float(f.duration / 1e6) < 4.6
    # a follow-up range request is not audited again
    c.get(seg["url"], headers={"Range": "bytes=100-"})
    assert tail(store, 1)[0] == entry
    # MPEG-4 part 2 is transcoded for the browser, and says so
    seg_b = c.get("/api/recordings/cam-b/timeline", params=window()).json()["segments"][0]
    assert c.get(seg_b["url"]).headers["x-transcoded"] == "true"


def test_refusals(client) -> None:  # noqa: ANN001
    c, store = client
    login(c, "aud")
    assert c.get("/api/recordings/cam-a/timeline", params=window()).status_code == 403
    login(c, "ivy")  # not cam-c
    assert c.get("/api/recordings/cam-c/timeline", params=window()).status_code == 404
    assert c.get("/api/recordings/cam-a/segments/20260501T000000.000Z.mp4").status_code == 404
    assert c.get("/api/recordings/cam-a/segments/..%2F..%2Fetc.mp4").status_code in (404, 422)
    too_long = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=49)).isoformat()}
    assert c.get("/api/recordings/cam-a/timeline", params=too_long).status_code == 422
    login(c, "otto")  # operators watch, but may not export
    r = c.post("/api/recordings/cam-a/export", json={"start": T0.isoformat(),
                                                      "end": (T0 + timedelta(seconds=35)).isoformat(), "case": "CASE-1"})
    assert r.status_code == 403


def test_investigator_exports_exactly_a_range_to_a_case(client) -> None:  # noqa: ANN001
    c, store = client
    login(c, "ann")
    start, end = T0 + timedelta(seconds=31), T0 + timedelta(seconds=35)
    r = c.post("/api/recordings/cam-a/export", json={"start": start.isoformat(), "end": end.isoformat(), "case": "CASE-2024-0042"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["case"] == "CASE-2024-0042" and 3.9 <= out["duration_s"] <= 5.1  # starts at the keyframe before
    entry = tail(store, 1)[0]
    assert entry["action"] == "export.range" and entry["exported_keys"] == [out["key"]]
    assert c.post("/api/recordings/cam-a/export", json={"start": start.isoformat(), "end": end.isoformat()}).status_code == 400


def test_merge_spans_joins_contiguous_segments_only() -> None:
    from pipeline.recordings import SegmentEntry

    def seg(a: float, b: float, gap: bool = False) -> SegmentEntry:
        s, e = T0 + timedelta(seconds=a), T0 + timedelta(seconds=b)
        return SegmentEntry("k", s.isoformat(), e.isoformat(), 0.0, b - a, 1, 1, 1, "h264", 1, 1, gap)

    assert merge_spans([seg(0, 4), seg(4, 8), seg(20, 24), seg(24.5, 30, gap=True)]) == [
        (T0, T0 + timedelta(seconds=8)), (T0 + timedelta(seconds=20), T0 + timedelta(seconds=24)),
        (T0 + timedelta(seconds=24.5), T0 + timedelta(seconds=30))]
