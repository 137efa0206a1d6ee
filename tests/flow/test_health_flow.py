"""Camera health end to end over the in-memory bus and a local store: a camera goes offline and returns (and
flaps once within the grace period), its recording has a gap, and its picture shows "no signal" for a while.
Rules, quality and index workers turn that into alerts and catalog records; the history, the KPI API, the
camera's health page and the daily report (HTML + CSV) show it, and every alert exists exactly once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.config.index import IndexConfig
from pipeline.config.quality import QualityConfig
from pipeline.config.rules import RulesConfig
from pipeline.config.runtime import RuntimeConfig
from pipeline.health.service import HealthService
from pipeline.recordings import SegmentEntry, save_index, segment_key
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.cameras import CameraStats, CameraStatus
from schemas.frames import FrameHeader
from schemas.topics import ALERTS, CAMERA_STATUS, FRAMES
from tests.unit.test_api_support import FakeAnalyzer, add_users, login, register_cameras
from workers.api.app import create_app
from workers.api.context import build_context
from workers.index.worker import IndexWorker
from workers.quality.housekeeping import DailyReports, Housekeeping
from workers.quality.worker import QualityWorker
from workers.rules.worker import RulesWorker

DAY = "2026-11-30"
D0 = datetime(2026, 11, 30, tzinfo=UTC)
NOW = D0 + timedelta(days=1, hours=2)
VTEST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "vtest.avi"
RULES = RulesConfig.model_validate({"cameras": [
    {"camera_id": "*", "rules": [{"id": "offline", "kind": "camera_offline", "grace_s": 60}]}]})


def status(camera: str, at: datetime, event: str, reason: str | None = None) -> CameraStatus:
    if event == "stats":
        return CameraStatus(camera_id=camera, observed_at=at, event="stats",
                            stats=CameraStats(window_seconds=60.0, fps_in=25.0, fps_out=5.0, bitrate_kbps=2000.0,
                                              frames_decoded=1500, decode_errors=2))
    return CameraStatus(camera_id=camera, observed_at=at, event=event, reason=reason)  # type: ignore[arg-type]


def publish_status(bus: MemoryBus, events: list[CameraStatus]) -> None:
    with bus.producer() as producer:
        for e in events:
            producer.send(CAMERA_STATUS.name, e.to_json(), key=e.camera_id)
        producer.flush()


def publish_frames(bus: MemoryBus, camera: str, start: datetime, seconds: int, blank: range) -> None:
    """One JPEG a second from vtest.avi; the seconds in ``blank`` are a blue 'no signal' screen."""
    with av.open(str(VTEST)) as container:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(seconds * 10), container.decode(video=0), strict=False)]
    with bus.producer() as producer:
        for i in range(seconds):
            image = frames[i * 10]
            if i in blank:
                image = np.zeros_like(image)
                image[:] = (160, 40, 0)
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            header = FrameHeader(camera_id=camera, session="s1", sequence=i, captured_at=start + timedelta(seconds=i),
                                 pts=float(i), width=image.shape[1], height=image.shape[0], source_codec="h264",
                                 keyframe=True)
            producer.send(FRAMES.name, jpeg.tobytes(), key=camera, headers=header.to_headers())
        producer.flush()


def record(store: LocalStore, camera: str, spans: list[tuple[datetime, datetime]]) -> None:
    entries = [SegmentEntry(key=segment_key("recordings", camera, a), start=a.isoformat(), end=b.isoformat(),
                            start_pts=0.0, duration_s=(b - a).total_seconds(), packets=1, keyframes=1, bytes=1,
                            codec="h264", width=768, height=576, after_gap=i > 0) for i, (a, b) in enumerate(spans)]
    save_index(store, "recordings", camera, DAY, entries)


def steps(worker: object, n: int = 30) -> None:
    for _ in range(n):
        worker.step()  # type: ignore[attr-defined]


def build_scene(tmp: Path) -> tuple[TubelineConfig, LocalStore, list[Alert]]:
    """Run the workers over the day's events into ``tmp``; returns the config, the store and the gap alerts sent."""
    store = LocalStore(tmp / "store")
    register_cameras(store)  # cam-a, cam-b (unit 510104), cam-c (510116)
    add_users(store)
    config = TubelineConfig(
        runtime=RuntimeConfig(poll_timeout_s=0.02),
        index=IndexConfig(cache_dir=str(tmp / "cache"), flush_interval_s=0.05, flush_max_records=10_000),
        quality=QualityConfig(housekeeping_interval_s=0, heartbeat_s=10.0), rules=RULES,
    )
    bus = MemoryBus(default_partitions=3)
    clock = [D0]
    rules = RulesWorker(config, bus=bus, store=store, rules=RULES, clock=lambda: clock[0])
    quality = QualityWorker(config, bus=bus, store=ScopedStore(store, access_matrix(config)["quality"]))
    index = IndexWorker(config, bus=bus, store=store)
    for w in (rules, quality, index):
        w.setup()
    sent: list[Alert] = []
    try:
        publish_status(bus, [status("cam-a", D0, "online"), status("cam-b", D0, "online"),
                             status("cam-a", D0 + timedelta(hours=8), "stats"),
                             status("cam-a", D0 + timedelta(hours=10), "offline", "timeout")])
        clock[0] = D0 + timedelta(hours=10, minutes=2)  # the wall clock moves on while cam-a is away
        steps(rules)
        publish_status(bus, [status("cam-a", D0 + timedelta(hours=10, minutes=30), "online"),
                             # a flap shorter than the grace period: history shows it, no alert
                             status("cam-a", D0 + timedelta(hours=15), "offline", "network"),
                             status("cam-a", D0 + timedelta(hours=15, seconds=20), "online")])
        clock[0] = D0 + timedelta(hours=16)
        steps(rules)
        publish_frames(bus, "cam-a", D0 + timedelta(hours=14), 40, range(15, 28))
        steps(quality, 40)
        record(store, "cam-a", [(D0, D0 + timedelta(hours=10)), (D0 + timedelta(hours=10, minutes=30),
                                                               D0 + timedelta(hours=12)),
                                (D0 + timedelta(hours=12, minutes=5), D0 + timedelta(days=1))])
        record(store, "cam-b", [(D0, D0 + timedelta(days=1))])
        steps(index)
        index.flush()
        quality_store = ScopedStore(store, access_matrix(config)["quality"])  # its identity: no registry
        keeper = Housekeeping(config, quality_store, config.quality)
        for _ in range(2):  # a second round (and a second replica, below) must not alert again
            keeper.run(sent.append, NOW)
        Housekeeping(config, quality_store, config.quality).run(sent.append, NOW)
        with bus.producer() as producer:
            for alert in sent:
                producer.send(ALERTS.name, alert.to_json(), key=alert.camera_id)
            producer.flush()
        steps(index)
        index.flush()
    finally:
        for w in (rules, quality, index):
            w.teardown()
    # The scheduled daily reports (beside the API, under its store identity): every camera and each unit.
    api_store = ScopedStore(store, access_matrix(config)["api"])
    made = DailyReports(config, api_store).run_once(NOW)
    assert sorted(made) == [f"reports/daily/{DAY}/{u}.html" for u in ("510104", "510116", "all")]
    assert DailyReports(config, api_store).run_once(NOW) == []  # made once, not again
    return config, store, sent


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("health")
    config, store, sent = build_scene(tmp)
    search = SearchService(store, config)
    search.refresh()
    ctx = build_context(config, store=store, search=search, face_analyzer_factory=FakeAnalyzer, audit_writer="t",
                        api=ApiConfig(cache_dir=str(tmp / "api-cache")))
    with TestClient(create_app(ctx, start_background=False)) as client:
        yield {"store": store, "config": config, "search": search, "client": client, "sent": sent}


def test_each_alert_exists_once(scene: dict) -> None:
    alerts = scene["search"].alerts(cameras=None, limit=100)
    kinds = sorted((a.alert_type, a.camera_id) for a in alerts)
    assert kinds == [("camera_offline", "cam-a"), ("quality_fault", "cam-a"), ("recording_gap", "cam-a")]
    gap = next(a for a in alerts if a.alert_type == "recording_gap")
    assert gap.occurred_at == D0 + timedelta(hours=12)  # the offline half hour is not a recording gap
    fault = next(a for a in alerts if a.alert_type == "quality_fault")
    assert abs((fault.occurred_at - (D0 + timedelta(hours=14, seconds=15))).total_seconds()) <= 1.0
    # The first keeper sent the gap once in two rounds; a second replica sent the same ID again, never a new one.
    assert len(scene["sent"]) == 2 and len({a.alert_id for a in scene["sent"]}) == 1


def test_history_has_the_offline_time_and_the_fault_episode(scene: dict) -> None:
    service = HealthService(scene["store"], scene["config"])
    service.refresh()
    start, end = D0, D0 + timedelta(days=1)
    spans = service.history.intervals(["cam-a", "cam-c"], start, end)
    offline = [(s.start, s.end, s.reason) for s in spans["cam-a"] if s.state == "offline"]
    assert offline == [(D0 + timedelta(hours=10), D0 + timedelta(hours=10, minutes=30), "timeout"),
                       (D0 + timedelta(hours=15), D0 + timedelta(hours=15, seconds=20), "network")]
    assert [s.state for s in spans["cam-c"]] == ["unknown"]
    assert service.history.online_rate(spans["cam-a"]) == pytest.approx(1 - 1820 / 86400)
    (ep,) = service.history.episodes(["cam-a"], start, end)
    assert ep.fault == "no_signal" and ep.end is not None and ep.thumbnail_key
    assert abs((ep.start - (D0 + timedelta(hours=14, seconds=15))).total_seconds()) <= 1.0
    assert abs((ep.end - (D0 + timedelta(hours=14, seconds=28))).total_seconds()) <= 1.5
    comp = service.history.completeness("cam-a", DAY, spans["cam-a"], 30.0)
    assert [(g.start, g.end) for g in comp.gaps] == [(D0 + timedelta(hours=12), D0 + timedelta(hours=12, minutes=5))]
    stats = service.history.stream_stats(["cam-a"], start, end)
    assert stats[0]["decode_errors"] == 2 and stats[0]["fps_in"] == 25.0


def test_kpi_api_scoped_per_unit_and_audited(scene: dict) -> None:
    client = scene["client"]
    login(client, "boss")
    body = client.get(f"/api/kpis?date={DAY}").json()
    k = body["kpis"]
    assert k["cameras"] == 3 and k["units"].keys() == {"510104", "510116"}
    assert k["geotag_rate"] == 1.0 and k["archive_completeness"] == 0.0  # no point class filed
    # cam-a was online 97.9 % and its picture fault lasted 13 s (< 5 % of its online time): healthy;
    # cam-c never reported: not online, not healthy.
    assert k["health_rate"] == pytest.approx(2 / 3) and k["cameras_meeting_target"] == 2
    assert k["case_video_intake"] is None and k["case_video_note"] == "n/a until cases exist"
    rows = {r["camera_id"]: r for r in body["cameras"]}
    assert rows["cam-a"]["faults"][0]["fault"] == "no_signal" and len(rows["cam-a"]["recording_gaps"]) == 1
    login(client, "ivy")  # unit 510104: cam-a and cam-b only
    body = client.get(f"/api/kpis?date={DAY}").json()
    assert {r["camera_id"] for r in body["cameras"]} == {"cam-a", "cam-b"}
    assert client.get(f"/api/cameras/cam-c/health?date={DAY}").status_code == 404
    health = client.get(f"/api/cameras/cam-a/health?date={DAY}").json()
    assert health["online_rate"] == pytest.approx(1 - 1820 / 86400) and health["stream"]
    assert client.get("/api/kpis?date=2999-01-01").status_code == 400
    from workers.api.audit import tail

    actions = [e["action"] for e in tail(scene["store"], 10)]
    assert "health.kpis" in actions and "health.camera" in actions


def test_daily_report_html_csv_and_unit_scope(scene: dict) -> None:
    client = scene["client"]
    login(client, "ivy")
    assert client.post(f"/api/reports/daily/{DAY}").status_code == 403  # every camera: not ivy's scope
    made = client.post(f"/api/reports/daily/{DAY}?unit=510104")
    assert made.status_code == 200, made.text
    page = client.get(f"/api/reports/daily/{DAY}?unit=510104")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "cam-a" in html and "no_signal" in html and "12:00:00–12:05:00" in html and "cam-c" not in html
    assert re.search(r'<img alt="picture of cam-a" src="data:image/jpeg;base64,', html)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/reports/daily/{DAY}?unit=510104&format=csv").text)))
    assert {r["camera_id"] for r in rows} == {"cam-a", "cam-b"}
    assert [r["healthy"] for r in sorted(rows, key=lambda r: r["camera_id"])] == ["yes", "yes"]
    assert next(r for r in rows if r["camera_id"] == "cam-a")["faults"].startswith("no_signal@")
    listed = client.get("/api/reports").json()["reports"]
    assert [(r["day"], r["unit"]) for r in listed] == [(DAY, "510104")]


def test_metrics_on_the_api_port(scene: dict) -> None:
    client = scene["client"]
    response = client.get("/metrics")  # the test client is not on loopback and has no token
    assert response.status_code == 403
