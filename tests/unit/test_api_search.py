"""Search, scope, sighting detail, media links, clip exports and the alerts stream — against the fake service.

Camera scope is the point of most of these: a user whose scope lacks a camera must get nothing from it
through any endpoint.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.topics import ALERTS
from tests.unit.test_api_support import (
    PASSWORD,
    T0,
    FakeAnalyzer,
    FakeSearch,
    add_users,
    login,
    register_cameras,
    sample_search,
    solid_jpeg,
    write_recording,
)
from workers.api.app import create_app
from workers.api.audit import tail
from workers.api.context import ApiContext, build_context
from workers.api.scope import unit_covers
from workers.api.serve import start_api

CASE = "CASE-2024-0042"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    register_cameras(s)
    add_users(s)
    s.put("crops/cam-a/x.jpg", solid_jpeg((0, 0, 200)), content_type="image/jpeg")
    return s


@pytest.fixture
def fake() -> FakeSearch:
    return sample_search()


@pytest.fixture
def ctx(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> ApiContext:
    api_store = ScopedStore(store, access_matrix(TubelineConfig())["api"])  # the API identity's rights only
    return build_context(TubelineConfig(), store=api_store, search=fake, face_analyzer_factory=FakeAnalyzer,
                         api=ApiConfig(cache_dir=str(tmp_path / "cache")))


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


@pytest.mark.parametrize(
    ("scope", "camera", "covered"),
    [("510104", "510104", True), ("510100", "510104", True), ("510000", "510116", True), ("510100", "510200", False),
     ("5101", "510104", True), ("510104", "510105", False), ("sichuan/chengdu", "sichuan/chengdu/wuhou", True),
     ("sichuan/chengdu", "sichuan/chengdudong", False), ("", "510104", False), ("510104", "", False)],
)
def test_unit_coverage(scope: str, camera: str, covered: bool) -> None:
    assert unit_covers(scope, camera) is covered


def test_plate_search_modes(client: TestClient) -> None:
    login(client, "ann")
    exact = client.get("/api/search/plates", params={"q": "川af058y"}).json()
    assert exact["count"] == 3 and {h["text"] for h in exact["hits"]} == {"川AF058Y"}
    wild = client.get("/api/search/plates", params={"q": "川A*58?", "mode": "wildcard"}).json()
    assert wild["count"] == 4
    fuzzy = client.get("/api/search/plates", params={"q": "川AF058Z", "mode": "fuzzy", "max_edits": 1}).json()
    assert fuzzy["count"] == 4 and all(h["edits"] == 1 for h in fuzzy["hits"])
    hit = exact["hits"][0]
    assert hit["camera_name"] and hit["crop_url"].startswith("/api/media/") and hit["id"] == hit["read_id"]


def test_vehicle_filters(client: TestClient) -> None:
    login(client, "ann")
    vans = client.get("/api/search/vehicles", params={"type": "van", "colour": "white"}).json()
    assert vans["count"] == 2
    narrowed = client.get("/api/search/vehicles", params={"type": "van", "camera": "cam-c"}).json()
    assert [h["camera_id"] for h in narrowed["hits"]] == ["cam-c"]
    timed = client.get("/api/search/vehicles", params={"start": (T0 + timedelta(seconds=15)).isoformat()}).json()
    assert timed["count"] == 1 and timed["hits"][0]["id"].endswith("/0")
    assert client.get("/api/search/vehicles", params={"colour": "mauve"}).status_code == 422


def test_person_search_by_clothing_colours(client: TestClient) -> None:
    login(client, "ann")
    red_dark = client.get("/api/search/persons", params={"upper": "red", "lower": "dark"}).json()
    assert [(h["camera_id"], h["upper_colour"], h["lower_colour"]) for h in red_dark["hits"]] == [
        ("cam-a", "red", "black")]
    assert client.get("/api/search/persons", params={"upper": "red"}).json()["count"] == 2
    assert client.get("/api/search/persons", params={"lower": "mauve"}).status_code == 422


def test_scope_is_passed_on_every_call(client: TestClient, fake: FakeSearch) -> None:
    login(client, "ivy")
    client.get("/api/search/plates", params={"q": "川AF058Y"})
    client.get("/api/search/vehicles")
    client.get("/api/alerts")
    client.get("/api/cameras")
    assert {name: cams for name, cams in fake.calls} == {
        name: ["cam-a", "cam-b"] for name in ("plates", "vehicles", "alerts", "camera_status")}


def test_out_of_scope_camera_gives_nothing_anywhere(client: TestClient, fake: FakeSearch, store: LocalStore) -> None:
    login(client, "ivy")  # unit 510104: cam-a and cam-b; cam-c is unit 510116
    plates = client.get("/api/search/plates", params={"q": "川AF058Y"}).json()
    assert {h["camera_id"] for h in plates["hits"]} == {"cam-a", "cam-b"} and plates["scope"] == "2 cameras"
    assert client.get("/api/search/plates", params={"q": "川AF058Y", "camera": "cam-c"}).json()["count"] == 0
    trajectory = client.get("/api/trajectory/plate", params={"plate": "川AF058Y", "case": CASE}).json()
    assert [s["camera_id"] for s in trajectory["sightings"]] == ["cam-a", "cam-b"]
    detail = client.get("/api/sighting", params={"kind": "plate", "id": "cam-c:s:2.plate.0"})
    assert detail.status_code == 404
    export = client.post("/api/exports", json={"kind": "plate", "id": "cam-c:s:2.plate.0", "case": CASE})
    assert export.status_code == 404
    faces = client.post("/api/search/faces", data={"case": CASE}, files={"image": ("q.jpg", solid_jpeg((0, 200, 0)))})
    assert faces.status_code == 200 and faces.json()["count"] == 1  # the best match (cam-c) is out of scope
    assert all(h["camera_id"] != "cam-c" for h in faces.json()["hits"])
    alerts = client.get("/api/alerts").json()
    assert [a["camera_id"] for a in alerts["alerts"]] == ["cam-a"]
    assert [c["camera_id"] for c in client.get("/api/cameras").json()["cameras"]] == ["cam-a", "cam-b"]
    assert tail(store, 1)[0]["params"]["scope"] == 2


def test_user_without_cameras_sees_nothing_and_the_service_is_not_asked(client: TestClient,
                                                                       fake: FakeSearch) -> None:
    login(client, "nemo")
    assert client.get("/api/search/plates", params={"q": "川AF058Y"}).json() == {"count": 0, "scope": "0 cameras",
                                                                                "hits": []}
    assert client.get("/api/cameras").json()["count"] == 0
    assert client.get("/api/sighting", params={"kind": "plate", "id": "cam-a:s:0.plate.0"}).status_code == 404
    assert fake.calls == []


def test_sighting_detail_and_media_links(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    detail = client.get("/api/sighting", params={"kind": "plate", "id": "cam-a:s:0.plate.0"}).json()
    s = detail["sighting"]
    assert s["camera_name"] == "North gate" and s["lat"] == pytest.approx(30.66)
    assert detail["clip_available"] is False and detail["camera"]["status"] == "online"
    image = client.get(s["crop_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == store.get("crops/cam-a/x.jpg")
    assert client.get(s["crop_url"][:-2] + "xx").status_code == 403
    login(client, "ivy")  # a link issued to ann does not work for ivy
    assert client.get(s["crop_url"]).status_code == 403
    entry = tail(store, 5, action="sighting")[0]
    assert entry["user"] == "ann" and entry["result_ids"] == ["cam-a:s:0.plate.0"]


def test_face_sighting_needs_face_rights_and_a_case(client: TestClient) -> None:
    login(client, "otto")
    assert client.get("/api/sighting", params={"kind": "face", "id": "cam-a:p:0.face.1", "case": CASE}).status_code == 403
    login(client, "ann")
    assert client.get("/api/sighting", params={"kind": "face", "id": "cam-a:p:0.face.1"}).status_code == 400
    assert client.get("/api/sighting", params={"kind": "face", "id": "cam-a:p:0.face.1", "case": CASE}).status_code == 200


def ffprobe_duration(path: Path) -> tuple[float, str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    doc = json.loads(out)
    return float(doc["format"]["duration"]), doc["streams"][0]["codec_name"]


@pytest.mark.parametrize(("codec", "transcoded"), [("libx264", False), ("mpeg4", True)])
def test_clip_export_is_playable_mp4_and_audited(client: TestClient, store: LocalStore, tmp_path: Path, codec: str,
                                                 transcoded: bool) -> None:
    write_recording(store, "cam-a", T0 - timedelta(seconds=6), 14, codec=codec)
    login(client, "ann")
    detail = client.get("/api/sighting", params={"kind": "plate", "id": "cam-a:s:0.plate.0"}).json()
    assert detail["clip_available"] is True
    made = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": CASE})
    assert made.status_code == 200, made.text
    export = made.json()
    assert export["transcoded"] is transcoded and export["case"] == CASE
    clip = client.get(export["url"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip.content)
    duration, codec_name = ffprobe_duration(path)
    assert codec_name == "h264"
    assert 3.0 <= duration <= 5.5  # the fake's clip range is 4 s; remuxing starts at the keyframe before it
    ranged = client.get(export["url"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    entry = tail(store, 1, action="export")[0]
    assert entry["case"] == CASE and entry["exported_keys"] == [export["key"]]
    assert entry["params"]["sha256"] == export["sha256"] == __import__("hashlib").sha256(clip.content).hexdigest()
    login(client, "ivy")  # another user cannot fetch ann's export
    assert client.get(export["url"]).status_code == 404


def test_export_without_recording_is_404(client: TestClient) -> None:
    login(client, "ann")
    response = client.post("/api/exports", json={"kind": "plate", "id": "cam-b:s:1.plate.0", "case": CASE})
    assert response.status_code == 404 and "no recording" in response.json()["detail"]


def test_operator_cannot_export(client: TestClient) -> None:
    login(client, "otto")
    response = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": CASE})
    assert response.status_code == 403


# -- live alerts over a real server ---------------------------------------------------------------------------
def _read_events(url: str, cookies: httpx.Cookies, found: list[dict], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, cookies=cookies, timeout=10) as http, http.stream("GET", "/api/alerts/stream") as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
            if stop.is_set():
                return


def test_alert_stream_is_live_and_scoped(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> None:
    bus = MemoryBus()
    api = ApiConfig(cache_dir=str(tmp_path / "cache"), sse_keepalive_s=0.2, port=0)
    server = start_api(TubelineConfig(), store=store, bus=bus, search=fake, bootstrap=False, api=api)
    try:
        seen: dict[str, list[dict]] = {"ann": [], "ivy": []}
        stop = threading.Event()
        threads = []
        for name in seen:
            with httpx.Client(base_url=server.url) as http:
                assert http.post("/api/session", json={"username": name, "password": PASSWORD}).status_code == 200
                cookies = http.cookies
            t = threading.Thread(target=_read_events, args=(server.url, cookies, seen[name], stop), daemon=True)
            t.start()
            threads.append(t)
        _wait(lambda: len(seen["ann"]) == 2 and len(seen["ivy"]) == 1)  # replay of the catalog's alerts
        with bus.producer() as producer:
            for cam in ("cam-c", "cam-b"):
                alert = Alert(alert_id=f"live-{cam}", alert_type="line_crossing", camera_id=cam, occurred_at=T0,
                              severity="medium", rule_id="r2", message=f"crossing on {cam}")
                producer.send(ALERTS.name, alert.to_json(), key=cam)
        _wait(lambda: len(seen["ann"]) == 4 and len(seen["ivy"]) == 2)
        stop.set()
        assert [a["camera_id"] for a in seen["ann"][2:]] == ["cam-c", "cam-b"]
        assert [a["alert_id"] for a in seen["ivy"]] == ["alert-0", "live-cam-b"]  # never cam-c
        for t in threads:
            t.join(timeout=5)
        streams = [e for e in tail(store, 20, action="alerts.stream")]
        assert {e["user"] for e in streams} == {"ann", "ivy"}
    finally:
        server.stop()


def _wait(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
