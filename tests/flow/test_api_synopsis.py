"""Synopses through the REST API: request, follow, watch, click an object back to its original clip.

The scene (``tests/synopsis_scene.py``) is a minute of H.264 recording with three movers whose true boxes
are known at every moment; their tracks reach the catalog through the real indexer, and the API's own
builder thread (``api.build_synopses``) builds the synopsis with the real builder from catalog + recording.

A click is checked against the truth, not against the index it came from: the original time the API
answers must be a moment where that mover really was under the clicked box, the synopsis frame must show
that mover's pixels there, and the clip the API cuts must show the mover at that place at ``offset_s``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.local import LocalStore
from pipeline.synopsis.index import SynopsisIndex
from tests.flow.test_api_scene import CASE, scene_config
from tests.synopsis_scene import (
    CAMERA,
    FPS,
    MOVERS,
    S0,
    SECONDS,
    H,
    W,
    box_at,
    centre,
    clear_points,
    colour_centre,
    mover_of,
    seconds_after_s0,
    setup_synopsis_scene,
)
from tests.unit.test_api_support import add_users, login, register_cameras
from workers.api import audit as audit_log
from workers.api.app import create_app
from workers.api.context import ApiContext, build_context
from workers.runner.companions import api_companions

LENGTH_S = 10.0


@dataclass
class Served:
    ctx: ApiContext
    client: TestClient
    store: LocalStore


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("api-synopsis")
    config = with_overrides(scene_config(TubelineConfig(), tmp), {
        "api.build_synopses": True,
        "synopsis.worker.poll_s": 0.2,
    })
    store, bus = LocalStore(tmp / "store"), MemoryBus(default_partitions=3)
    register_cameras(store)
    add_users(store)
    setup_synopsis_scene(config, bus, store)
    matrix = access_matrix(config)  # the API and its synopsis builder keep to their own identities' rights
    ctx = build_context(config, store=ScopedStore(store, matrix["api"]), bus=bus, face_analyzer_factory=lambda: None,
                        companions=api_companions(config, ScopedStore(store, matrix["synopsis"]), bus=bus))
    with TestClient(create_app(ctx)) as client:  # the lifespan starts the builder thread
        yield Served(ctx, client, store)


def window(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"camera_id": CAMERA, "start": S0.isoformat(),
                            "end": (S0 + timedelta(seconds=SECONDS)).isoformat(), "length_s": LENGTH_S}
    body.update(extra)
    return body


def wait_done(client: TestClient, url: str, timeout_s: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(url).json()
        state = body["synopsis"]["state"] if "synopsis" in body else body["state"]
        if state not in ("queued", "running"):
            return body
        assert time.monotonic() < deadline, f"synopsis still {state} after {timeout_s:.0f} s"
        time.sleep(0.3)


def decode(data: bytes) -> list[tuple[float, np.ndarray]]:
    """(seconds from the first frame, BGR image) of every frame of an MP4."""
    out: list[tuple[float, np.ndarray]] = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        first = None
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else len(out) / FPS
            first = t if first is None else first
            out.append((t - first, frame.to_ndarray(format="bgr24")))
    return out


@pytest.fixture(scope="module")
def built(served: Served) -> tuple[dict[str, Any], SynopsisIndex]:
    client = served.client
    login(client, "ann")
    first = client.post("/api/synopses", json=window(case=CASE))
    assert first.status_code == 200, first.text
    again = client.post("/api/synopses", json=window())
    assert again.json()["synopsis_id"] == first.json()["synopsis_id"]  # same request, same synopsis
    detail = wait_done(client, first.json()["url"])
    assert detail["synopsis"]["state"] == "done", detail
    index = served.ctx.synopses.index(CAMERA, detail["synopsis"]["synopsis_id"])
    assert index is not None
    return detail, index


def test_request_builds_a_synopsis_with_every_object_at_its_original_times(built: tuple[dict, SynopsisIndex]) -> None:
    detail, _ = built
    assert detail["width"] == W and detail["height"] == H
    assert detail["duration_s"] <= LENGTH_S + 1 / FPS
    objects = {o["track_id"]: o for o in detail["objects"]}
    assert set(objects) == {m.track_id for m in MOVERS}
    for mover in MOVERS:
        obj = objects[mover.track_id]
        assert abs(seconds_after_s0(datetime.fromisoformat(obj["original_start"])) - mover.t0) < 0.01
        assert abs(seconds_after_s0(datetime.fromisoformat(obj["original_end"])) - mover.t1) < 0.01
        assert obj["class_name"] == mover.class_name and obj["colour"] == mover.colour
        assert obj["sighting_id"] == f"{mover.track_id}/0"
    assert detail["metrics"]["condensation"] >= 5.0
    assert 0.0 <= detail["metrics"]["collision_ratio"] <= 1.0


def test_coverage_shows_what_was_recorded(served: Served, built: tuple[dict, SynopsisIndex]) -> None:
    client = served.client
    around = {"camera": CAMERA, "start": (S0 - timedelta(hours=1)).isoformat(),
              "end": (S0 + timedelta(hours=1)).isoformat()}
    cov = client.get("/api/synopses/coverage", params=around).json()
    spans = [(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in cov["spans"]]
    assert spans == [(S0, S0 + timedelta(seconds=SECONDS))]  # six 10-s segments joined
    assert datetime.fromisoformat(cov["latest_end"]) == S0 + timedelta(seconds=SECONDS)
    assert client.get("/api/synopses/coverage", params={"camera": CAMERA}).json()["spans"] == []  # last 2 days
    assert client.get("/api/synopses/coverage", params={**around, "start": "2026-05-01T08:00:00"}).status_code == 422


def test_the_video_plays_and_range_requests_work(served: Served, built: tuple[dict, SynopsisIndex]) -> None:
    detail, index = built
    client = served.client
    url = detail["synopsis"]["video_url"]
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    frames = decode(response.content)
    assert len(frames) == detail["frames"] == index.frames
    assert frames[0][1].shape == (H, W, 3)
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == response.content[100:200]


def test_a_click_leads_to_the_true_original_moment_of_that_object(served: Served,
                                                                 built: tuple[dict, SynopsisIndex]) -> None:
    detail, index = built
    client = served.client
    frames = decode(client.get(detail["synopsis"]["video_url"]).content)
    base = detail["synopsis"]["url"]
    for number, obj in enumerate(index.objects):
        mover = mover_of(obj.track_id)
        for frame, box in clear_points(index, obj):
            cx, cy = centre(box)
            r = client.get(f"{base}/at", params={"t": (frame + 0.5) / index.fps, "x": cx, "y": cy})
            assert r.status_code == 200, r.text
            hit = r.json()
            assert hit["object"]["track_id"] == mover.track_id and hit["object"]["number"] == number
            assert hit["frame"] == frame
            # the truth: where the mover really was at the original time the API names
            truth = box_at(mover, seconds_after_s0(datetime.fromisoformat(hit["original_time"])))
            assert truth is not None
            tx, ty = centre(truth)
            assert abs(tx - cx) <= 2.0 and abs(ty - cy) <= 2.0, (mover.number, frame, (tx, ty), (cx, cy))
            # and the synopsis frame shows that mover there
            seen = colour_centre(frames[frame][1], mover.bgr)
            assert seen is not None and abs(seen[0] - cx) <= 4 and abs(seen[1] - cy) <= 6, (mover.number, seen)
        # the object's sighting ID opens its track in the sighting detail
        sighting = client.get("/api/sighting", params={"kind": "track", "id": hit["object"]["sighting_id"]})
        assert sighting.status_code == 200, sighting.text
        assert sighting.json()["sighting"]["track_id"] == mover.track_id


def test_objects_by_number_lead_to_the_true_original_moment(served: Served, built: tuple[dict, SynopsisIndex]) -> None:
    detail, index = built
    client = served.client
    base = detail["synopsis"]["url"]
    for number, obj in enumerate(index.objects):
        mover = mover_of(obj.track_id)
        for t in (None, obj.synopsis_start_s, index.duration_s):  # middle, first frame, clamped to its last
            r = client.get(f"{base}/objects/{number}", params={} if t is None else {"t": t})
            assert r.status_code == 200, r.text
            hit = r.json()
            assert hit["object"]["track_id"] == mover.track_id
            assert obj.first_frame <= hit["frame"] <= obj.last_frame
            truth = box_at(mover, seconds_after_s0(datetime.fromisoformat(hit["original_time"])))
            assert truth is not None
            assert max(abs(a - b) for a, b in zip(centre(truth), centre(hit["box"]), strict=True)) <= 2.0
    assert client.get(f"{base}/objects/{len(index.objects)}").status_code == 404
    # a clip by number needs no clear spot: the object is named, not found under a pixel
    obj = index.objects[0]
    r = client.post(f"{base}/clip", json={"t": obj.synopsis_start_s, "number": 0, "case": CASE})
    assert r.status_code == 200, r.text
    assert r.json()["hit"]["object"]["track_id"] == obj.track_id and r.json()["hit"]["frame"] == obj.first_frame


def test_empty_spots_and_bad_clicks(served: Served, built: tuple[dict, SynopsisIndex]) -> None:
    detail, index = built
    client = served.client
    base = detail["synopsis"]["url"]
    frame = index.objects[0].first_frame
    boxes = [o.boxes[frame - o.first_frame] for o in index.objects if o.first_frame <= frame <= o.last_frame]
    spot = next((x, y) for y in range(5, H, 10) for x in range(5, W, 10)
                if not any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes))
    assert client.get(f"{base}/at", params={"t": (frame + 0.5) / index.fps, "x": spot[0], "y": spot[1]}).status_code == 404
    assert client.get(f"{base}/at", params={"t": index.duration_s + 5, "x": 10, "y": 10}).status_code == 422
    assert client.get(f"{base}/at", params={"t": 1, "x": W + 50, "y": 10}).status_code == 422
    assert client.get(f"{base}/at", params={"t": -1, "x": 1, "y": 1}).status_code == 422


def test_clip_of_a_clicked_object_shows_it_where_it_was_clicked(served: Served,
                                                              built: tuple[dict, SynopsisIndex]) -> None:
    detail, index = built
    client = served.client
    obj = next(o for o in index.objects if o.track_id == MOVERS[2].track_id)
    mover = MOVERS[2]
    frame, box = clear_points(index, obj)[0]
    cx, cy = centre(box)
    click = {"t": (frame + 0.5) / index.fps, "x": cx, "y": cy}
    base = detail["synopsis"]["url"]
    no_case = client.post(f"{base}/clip", json=click)
    assert no_case.status_code == 400 and "case" in no_case.json()["detail"]
    r = client.post(f"{base}/clip", json={**click, "case": CASE})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["hit"]["object"]["track_id"] == mover.track_id
    export = out["export"]
    assert export["camera_id"] == CAMERA and export["case"] == CASE and not export["transcoded"]
    # the whole object (15 s) plus 2 s either side fits in api.clip_max_s
    start, end = datetime.fromisoformat(export["start"]), datetime.fromisoformat(export["end"])
    assert seconds_after_s0(start) <= mover.t0 and seconds_after_s0(end) >= mover.t1
    clip = decode(client.get(export["url"]).content)
    assert abs(clip[-1][0] - export["duration_s"]) <= 0.5
    at = min(clip, key=lambda f: abs(f[0] - out["offset_s"]))
    seen = colour_centre(at[1], mover.bgr)
    assert seen is not None, "the mover is not in the clip at offset_s"
    assert abs(seen[0] - cx) <= 4 and abs(seen[1] - cy) <= 6, (seen, (cx, cy))


def test_persons_only_changes_which_objects_appear(served: Served, built: tuple[dict, SynopsisIndex]) -> None:
    client = served.client
    r = client.post("/api/synopses", json=window(classes=["person"]))
    assert r.status_code == 200, r.text
    assert r.json()["synopsis_id"] != built[0]["synopsis"]["synopsis_id"]
    detail = wait_done(client, r.json()["url"])
    assert {o["track_id"] for o in detail["objects"]} == {m.track_id for m in MOVERS if m.class_name == "person"}
    full = {o["track_id"]: o for o in built[0]["objects"]}
    for o in detail["objects"]:
        assert o["original_start"] == full[o["track_id"]]["original_start"]
        assert o["original_end"] == full[o["track_id"]]["original_end"]
    listed = client.get("/api/synopses").json()
    assert {s["synopsis_id"] for s in listed["synopses"]} >= {r.json()["synopsis_id"], built[0]["synopsis"]["synopsis_id"]}


@pytest.mark.parametrize(("change", "message"), [
    ({"end": S0.isoformat()}, "end must be after start"),
    ({"end": (S0 + timedelta(days=2)).isoformat()}, "at most"),
    ({"start": "2026-05-01T09:00:00"}, "time zone"),
    ({"colours": ["mauve"]}, "colours"),
    ({"zone": [[0.1, 0.1], [0.2, 0.2]]}, "zone"),
    ({"camera_id": "cam-nowhere"}, "no recording of camera"),
    ({"start": (S0 - timedelta(hours=2)).isoformat(), "end": (S0 - timedelta(hours=1, minutes=30)).isoformat()},
     "no recording of camera"),
    ({"case": "not a case"}, "case reference"),
])
def test_bad_requests_are_refused_with_a_reason(served: Served, built: Any, change: dict, message: str) -> None:
    served.client.headers.pop("X-CSRF-Token", None)
    login(served.client, "ann")
    r = served.client.post("/api/synopses", json=window(**change))
    assert r.status_code in (400, 404, 422), r.text
    assert message in r.json()["detail"], r.json()


def test_scope_and_roles(served: Served, built: tuple[dict, SynopsisIndex], tmp_path: Path) -> None:
    detail, index = built
    base = detail["synopsis"]["url"]
    frame, box = clear_points(index, index.objects[0], 1)[0]
    click = {"t": (frame + 0.5) / index.fps, "x": centre(box)[0], "y": centre(box)[1]}
    with TestClient(served.client.app) as ivy:  # investigator of unit 510104: cam-a and cam-b, not cam-c
        login(ivy, "ivy")
        assert ivy.get("/api/synopses").json()["count"] == 0
        for url in (base, f"{base}/video.mp4", f"{base}/at?t={click['t']}&x={click['x']}&y={click['y']}"):
            assert ivy.get(url).status_code == 404, url
        assert ivy.post(f"{base}/clip", json={**click, "case": CASE}).status_code == 404
        assert ivy.post("/api/synopses", json=window()).status_code == 404
        assert ivy.get("/api/synopses/coverage", params={"camera": CAMERA}).status_code == 404
    with TestClient(served.client.app) as otto:  # operator: may watch and locate, not export
        login(otto, "otto")
        assert otto.get(base).status_code == 200
        assert otto.get(f"{base}/at", params=click).status_code == 200
        assert otto.post(f"{base}/clip", json={**click, "case": CASE}).status_code == 403
    with TestClient(served.client.app) as aud:  # auditor: no synopses
        login(aud, "aud")
        assert aud.post("/api/synopses", json=window()).status_code == 403
        assert aud.get(base).status_code == 403
    anonymous = TestClient(served.client.app)
    assert anonymous.get(base).status_code == 401
    assert anonymous.get(f"{base}/video.mp4").status_code == 401


def test_every_synopsis_call_is_audited(served: Served, built: tuple[dict, SynopsisIndex]) -> None:
    store, ctx = served.store, served.ctx
    entries = audit_log.tail(store, 1000, prefix=ctx.audit.prefix)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_action.setdefault(e["action"], []).append(e)
    requests = [e for e in by_action["synopsis.request"] if e["user"] == "ann" and e["outcome"] == "ok"]
    assert requests and all(e["params"]["synopsis_id"] for e in requests)
    assert any(e["case"] == CASE for e in requests)
    assert any(e["outcome"] == "ok" and e["result_count"] == len(MOVERS) for e in by_action["synopsis.view"])
    videos = [e for e in by_action["synopsis.video"] if e["user"] == "ann"]
    assert videos, "a playback from the start is audited"
    assert any(e["outcome"] == "ok" and e["result_ids"] for e in by_action["synopsis.locate"])
    clips = [e for e in by_action["synopsis.clip"] if e["outcome"] == "ok"]
    assert clips and clips[0]["case"] == CASE and clips[0]["exported_keys"][0].startswith("exports/")
    assert any(e["outcome"] == "refused" and e["user"] == "ivy" for e in by_action["synopsis.request"])
    assert any(e["outcome"] == "refused" and e["user"] == "otto" for e in by_action["synopsis.clip"])
    assert audit_log.verify(store, prefix=ctx.audit.prefix).ok


def test_builds_report_progress_phase_by_phase(served: Served, tmp_path: Path) -> None:
    """The builder reports each phase in order with a growing share; the worker writes it into the status."""
    from pipeline.synopsis.request import SynopsisRequest
    from workers.synopsis.catalog import CatalogTrackSource
    from workers.synopsis.worker import SynopsisWorker

    store = served.store
    request = SynopsisRequest(camera_id=CAMERA, start=S0, end=S0 + timedelta(seconds=SECONDS), length_s=8.0)
    settings = served.ctx.config.synopsis
    settings = settings.model_copy(update={"worker": settings.worker.model_copy(update={"status_s": 0.05})})
    written: list[tuple[str, str, float | None]] = []
    original_put = store.put

    def spy(key: str, data: Any, **kw: Any) -> Any:
        if key.endswith(".status.json"):
            from pipeline.synopsis.request import SynopsisStatus

            status = SynopsisStatus.from_json(data)
            written.append((status.state, status.phase, status.progress))
        return original_put(key, data, **kw)

    seen: list[tuple[str, float]] = []
    worker = SynopsisWorker(served.ctx.config, bus=MemoryBus(), store=store, settings=settings,
                            source=CatalogTrackSource(store, served.ctx.config.index.catalog_prefix))
    store.put = spy  # type: ignore[method-assign]
    try:
        from workers.synopsis import builder

        real = builder.build_synopsis

        def recording_build(*args: Any, progress: Any = None, **kw: Any) -> Any:
            def both(phase: str, fraction: float) -> None:
                seen.append((phase, fraction))
                progress(phase, fraction)
                time.sleep(0.01)  # give the status writer a chance to see the phases of this short build

            return real(*args, progress=both, **kw)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("workers.synopsis.worker.build_synopsis", recording_build)
            status = worker.build(request)
    finally:
        store.put = original_put  # type: ignore[method-assign]
    assert status.state == "done" and status.progress is None
    phases = [p for p, _ in seen]
    order = ["arrange", "background", "mattes", "render", "store"]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == order
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] >= 0.97
    running = [(ph, pr) for state, ph, pr in written if state == "running"]
    assert len(running) >= 3 and all(pr is not None and 0.0 <= pr <= 1.0 for _, pr in running)
    assert len({ph for ph, _ in running}) >= 2, running  # the status follows the phases
    assert written[-1][0] == "done"
