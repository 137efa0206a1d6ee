"""The API end to end on the real broker and S3 server: the scene of ``tests/flow/test_api_scene.py`` is
published to Kafka, catalogued by the real indexer into S3, and searched through a real uvicorn server.

Shows: plate exact/wildcard/fuzzy, vehicle filters, face search returning the right person first (query
``person_a_2``), trajectories in time order with coordinates, a clip FFmpeg reads with the expected
duration, a user without a camera in scope getting nothing from it (search, detail, clip, trajectory,
alerts stream), face search refused without a case reference, every call in the audit log, and
``tubeline audit verify`` failing after one byte of the log changes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pipeline.bus import open_bus
from pipeline.config import TubelineConfig, config_data
from pipeline.store import open_store
from pipeline.store.base import ObjectStore
from schemas.alerts import Alert
from schemas.topics import ALERTS
from tests.flow.test_api_scene import CASE, PLATE, TESTDATA, Scene, load_analyzer, scene_config, setup_scene
from tests.unit.test_api_support import PASSWORD, T0
from workers.api.audit import iter_entries, verify
from workers.api.serve import ApiServer, start_api
from workers.cli import main

pytestmark = pytest.mark.integration
UNAUDITED = ("/api/session",)  # a successful GET of the session; media fetches and downloads from byte 0 are audited


@dataclass
class Env:
    config: TubelineConfig
    store: ObjectStore
    bus: Any
    server: ApiServer
    scene: Scene
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (user, method, path) of audited calls

    def client(self, user: str) -> httpx.Client:
        def record(request: httpx.Request) -> None:
            path = request.url.path
            follow_up = path.endswith(".mp4") and not request.headers.get("range", "bytes=0-").startswith("bytes=0-")
            if not (request.method == "GET" and (any(p in path for p in UNAUDITED) or follow_up)):
                self.calls.append((user, request.method, path))

        http = httpx.Client(base_url=self.server.url, timeout=60, event_hooks={"request": [record]})
        response = http.post("/api/session", json={"username": user, "password": PASSWORD})
        assert response.status_code == 200, response.text
        http.headers["X-CSRF-Token"] = response.json()["csrf"]
        return http


@pytest.fixture(scope="module")
def env(real_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: ANN001
    name = "t" + uuid.uuid4().hex[:10]
    tmp = tmp_path_factory.mktemp("api-stack")
    config = scene_config(real_stack.with_prefix(name, bucket=name), tmp)
    store, bus = open_store(config), open_bus(config)
    analyzer = load_analyzer()
    scene = setup_scene(config, bus, store, analyzer)
    server = start_api(config, store=store, bus=bus, bootstrap=False, face_analyzer_factory=lambda: analyzer)
    try:
        yield Env(config, store, bus, server, scene)
    finally:
        server.stop()
        bus.close()


@pytest.fixture(scope="module")
def ann(env: Env) -> Iterator[httpx.Client]:
    http = env.client("ann")
    yield http
    http.close()


@pytest.fixture(scope="module")
def ivy(env: Env) -> Iterator[httpx.Client]:
    http = env.client("ivy")  # unit 510104: cam-a and cam-b, not cam-c
    yield http
    http.close()


def test_plate_search_exact_wildcard_fuzzy(ann: httpx.Client) -> None:
    exact = ann.get("/api/search/plates", params={"q": PLATE}).json()
    assert [h["camera_id"] for h in exact["hits"]] == ["cam-c", "cam-b", "cam-a"]  # newest first
    wild = ann.get("/api/search/plates", params={"q": "川A*58?", "mode": "wildcard"}).json()
    assert sorted({h["text"] for h in wild["hits"]}) == ["川AF058X", PLATE] and wild["count"] == 4
    fuzzy = ann.get("/api/search/plates", params={"q": "川AF05BY", "mode": "fuzzy", "max_edits": 1}).json()
    assert fuzzy["count"] == 3 and {h["text"] for h in fuzzy["hits"]} == {PLATE}
    assert all(h["edits"] == 1 for h in fuzzy["hits"])
    crop = ann.get(exact["hits"][0]["crop_url"])
    assert crop.status_code == 200 and crop.content == (TESTDATA / "plates" / "cn" / "crop_0.jpg").read_bytes()


def test_vehicle_filters(ann: httpx.Client) -> None:
    vans = ann.get("/api/search/vehicles", params={"type": "van", "colour": "white"}).json()
    assert sorted(h["camera_id"] for h in vans["hits"]) == ["cam-a", "cam-c"]
    assert all(h["plate"] in (None, "川AF058X", "川B00001") for h in vans["hits"])
    on_b = ann.get("/api/search/vehicles", params={"camera": "cam-b"}).json()
    assert {(h["vehicle_type"], h["colour"]) for h in on_b["hits"]} == {("car", "silver"), ("car", "red")}
    window = {"start": (T0 + timedelta(seconds=60)).isoformat(), "end": (T0 + timedelta(seconds=100)).isoformat()}
    assert {h["camera_id"] for h in ann.get("/api/search/vehicles", params=window).json()["hits"]} == {"cam-b"}


def test_face_search_finds_the_right_person_first(ann: httpx.Client, env: Env) -> None:
    query = (TESTDATA / "faces" / "person_a_2.jpg").read_bytes()
    response = ann.post("/api/search/faces", data={"case": CASE, "k": "5"}, files={"image": ("a2.jpg", query)})
    assert response.status_code == 200, response.text
    body = response.json()
    tracks = [h["track_id"] for h in body["hits"]]
    assert set(tracks[:2]) == {"cam-a:s0:100", "cam-c:s0:102"}  # person A, on both cameras, first
    assert tracks[2] == "cam-b:s0:101" and not body["hits"][2]["match"]  # person B last, below the threshold
    assert body["hits"][0]["match"] and body["hits"][0]["score"] > body["hits"][2]["score"]
    assert body["query"]["model_id"] == env.scene.model_id and body["query"]["quality"] > 0.3


def test_face_search_refusals(ann: httpx.Client) -> None:
    query = (TESTDATA / "faces" / "person_a_2.jpg").read_bytes()
    no_case = ann.post("/api/search/faces", files={"image": ("a2.jpg", query)})
    assert no_case.status_code == 400 and "case reference" in no_case.json()["detail"]
    import cv2
    import numpy as np

    blurred = cv2.GaussianBlur(cv2.imdecode(np.frombuffer(query, np.uint8), cv2.IMREAD_COLOR), (0, 0), 12)
    low = ann.post("/api/search/faces", data={"case": CASE},
                   files={"image": ("blur.jpg", cv2.imencode(".jpg", blurred)[1].tobytes())})
    assert low.status_code == 422 and "blurred" in low.json()["detail"]


def test_trajectories_in_time_order_with_coordinates(ann: httpx.Client) -> None:
    plate = ann.get("/api/trajectory/plate", params={"plate": PLATE, "case": CASE}).json()
    sightings = plate["sightings"]
    assert [s["camera_id"] for s in sightings] == ["cam-a", "cam-b", "cam-c"]
    assert [s["time"] for s in sightings] == sorted(s["time"] for s in sightings)
    assert sightings[0]["lat"] == pytest.approx(30.66) and sightings[2]["lon"] == pytest.approx(103.95)
    query = (TESTDATA / "faces" / "person_a_2.jpg").read_bytes()
    face = ann.post("/api/trajectory/face", data={"case": CASE}, files={"image": ("a2.jpg", query)}).json()
    assert [s["camera_id"] for s in face["sightings"]] == ["cam-a", "cam-c"]
    again = ann.post("/api/trajectory/face", data={"case": CASE, "query": face["query"]["image_sha256"]}).json()
    assert [s["id"] for s in again["sightings"]] == [s["id"] for s in face["sightings"]]


def test_clip_is_an_mp4_ffmpeg_reads_with_the_expected_duration(ann: httpx.Client, tmp_path: Path) -> None:
    sighting = ann.get("/api/search/plates", params={"q": PLATE, "camera": "cam-a"}).json()["hits"][0]
    detail = ann.get("/api/sighting", params={"kind": "plate", "id": sighting["id"]}).json()
    assert detail["clip_available"]
    s = detail["sighting"]
    expected = (_dt(s["clip_end"]) - _dt(s["clip_start"])).total_seconds()
    export = ann.post("/api/exports", json={"kind": "plate", "id": sighting["id"], "case": CASE}).json()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(ann.get(export["url"]).content)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "format=duration,format_name:stream=codec_name,"
         "nb_read_frames", "-of", "json", str(clip)], capture_output=True, text=True, check=True).stdout)
    assert probe["streams"][0]["codec_name"] == "h264" and "mp4" in probe["format"]["format_name"]
    assert float(probe["format"]["duration"]) == pytest.approx(expected, abs=1.1)  # the GOP is 1 s
    assert int(probe["streams"][0]["nb_read_frames"]) >= 10 * (expected - 1)
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-f", "null", "-"], capture_output=True,
                             text=True)
    assert decoded.returncode == 0 and decoded.stderr == ""


def _dt(text: str):  # noqa: ANN202
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_out_of_scope_camera_yields_nothing(ivy: httpx.Client, ann: httpx.Client, env: Env) -> None:
    plates = ivy.get("/api/search/plates", params={"q": PLATE}).json()
    assert [h["camera_id"] for h in plates["hits"]] == ["cam-b", "cam-a"]
    assert ivy.get("/api/search/plates", params={"q": PLATE, "camera": "cam-c"}).json()["count"] == 0
    vans = ivy.get("/api/search/vehicles", params={"type": "van"}).json()
    assert {h["camera_id"] for h in vans["hits"]} == {"cam-a"}
    cam_c = ann.get("/api/search/plates", params={"q": PLATE, "camera": "cam-c"}).json()["hits"][0]["id"]
    assert ivy.get("/api/sighting", params={"kind": "plate", "id": cam_c}).status_code == 404
    assert ivy.post("/api/exports", json={"kind": "plate", "id": cam_c, "case": CASE}).status_code == 404
    trajectory = ivy.get("/api/trajectory/plate", params={"plate": PLATE, "case": CASE}).json()
    assert [s["camera_id"] for s in trajectory["sightings"]] == ["cam-a", "cam-b"]
    query = (TESTDATA / "faces" / "person_a_2.jpg").read_bytes()
    faces = ivy.post("/api/search/faces", data={"case": CASE}, files={"image": ("a2.jpg", query)}).json()
    assert {h["camera_id"] for h in faces["hits"]} == {"cam-a", "cam-b"}
    face_traj = ivy.post("/api/trajectory/face", data={"case": CASE}, files={"image": ("a2.jpg", query)}).json()
    assert [s["camera_id"] for s in face_traj["sightings"]] == ["cam-a"]
    assert [c["camera_id"] for c in ivy.get("/api/cameras").json()["cameras"]] == ["cam-a", "cam-b"]
    assert [a["camera_id"] for a in ivy.get("/api/alerts").json()["alerts"]] == ["cam-a"]
    _check_live_alerts(env, ivy, ann)


def _stream(http: httpx.Client, found: list[dict], stop: threading.Event) -> None:
    with http.stream("GET", "/api/alerts/stream") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
            if stop.is_set():
                return


def _check_live_alerts(env: Env, ivy: httpx.Client, ann: httpx.Client) -> None:
    seen: dict[str, list[dict]] = {"ivy": [], "ann": []}
    stop = threading.Event()
    threads = [threading.Thread(target=_stream, args=(http, seen[name], stop), daemon=True)
               for name, http in (("ivy", ivy), ("ann", ann))]
    for t in threads:
        t.start()
    _wait(lambda: len(seen["ann"]) >= 2 and len(seen["ivy"]) >= 1, "catalog replay")
    with env.bus.producer() as producer:
        for cam in ("cam-c", "cam-b"):
            alert = Alert(alert_id=f"live-{cam}", alert_type="line_crossing", camera_id=cam, occurred_at=T0,
                          severity="medium", rule_id="line-1", message=f"line crossed on {cam}")
            producer.send(ALERTS.name, alert.to_json(), key=cam)
        producer.flush()
    _wait(lambda: {"live-cam-b", "live-cam-c"} <= {a["alert_id"] for a in seen["ann"]}, "live alerts for ann")
    _wait(lambda: "live-cam-b" in {a["alert_id"] for a in seen["ivy"]}, "live alert for ivy")
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    assert all(a["camera_id"] != "cam-c" for a in seen["ivy"])


def _wait(condition, what: str, timeout: float = 45.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_every_call_is_audited_and_one_changed_byte_fails_verify(env: Env, ann: httpx.Client,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ann.get("/api/cameras")
    entries = [e for e in iter_entries(env.store) if e["action"] not in ("audit.open", "audit.anchor")]
    for user in ("ann", "ivy"):
        made = [c for c in env.calls if c[0] == user]
        logged = [e for e in entries if e["user"] == user]
        assert len(logged) == len(made), (user, made, [e["action"] for e in logged])
    faces = [e for e in entries if e["action"] == "search.faces"]
    assert {e["outcome"] for e in faces} == {"ok", "refused"}
    assert all(e["case"] == CASE for e in faces if e["outcome"] == "ok")
    exports = [e for e in entries if e["action"] == "export.clip" and e["outcome"] == "ok"]
    assert exports and all(e["exported_keys"][0].startswith("exports/") for e in exports)
    assert verify(env.store).ok

    data = config_data(env.config, reveal_secrets=True)["store"]
    for key, value in {"BACKEND": "s3", "S3__ENDPOINT": data["s3"]["endpoint"], "S3__BUCKET": data["s3"]["bucket"],
                       "S3__ACCESS_KEY": data["s3"]["access_key"], "S3__SECRET_KEY": data["s3"]["secret_key"]}.items():
        monkeypatch.setenv(f"TUBELINE_STORE__{key}", str(value))
    runner = CliRunner()
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 0
    victim = next(e for e in entries if e["action"] == "search.plates")
    key = f"audit/chains/{victim['writer']}/{victim['seq']:012d}.json"
    raw = env.store.get(key)
    at = raw.index(b'"q":"') + 5
    env.store.put(key, raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:], content_type="application/json")
    result = runner.invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"FAILED: {key}" in result.output
