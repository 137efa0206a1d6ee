"""Test support for the API tests (no tests here): an in-memory stand-in for ``SearchService`` and a
face analyzer that needs no model, so the API's own logic (auth, scope, audit, errors) is tested fast.

The end-to-end tests (``tests/integration/test_api*.py``) use the real SearchService instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from pipeline.core import Detections
from pipeline.search.hits import AlertHit, CameraState, FaceHit, PlateHit, QueryError, Sighting, TrackHit

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
CAMERAS = {  # id: (name, lat, lon, admin unit)
    "cam-a": ("North gate", 30.660, 104.060, "510104"),
    "cam-b": ("Ring road", 30.665, 104.070, "510104"),
    "cam-c": ("Airport", 30.570, 103.950, "510116"),
}


def _edits(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _in(cameras: Collection[str] | None, camera: str) -> bool:
    return cameras is None or camera in cameras


def _window(t: datetime, start: datetime | None, end: datetime | None) -> bool:
    for v in (start, end):
        if v is not None and v.tzinfo is None:
            msg = "naive time"
            raise QueryError(msg)
    return (start is None or t >= start) and (end is None or t < end)


@dataclass
class FakeSearch:
    """The SearchService interface over lists; the same scope rules (None = all, empty = nothing)."""

    plates_: list[PlateHit] = field(default_factory=list)
    tracks_: list[TrackHit] = field(default_factory=list)
    faces_: list[tuple[FaceHit, np.ndarray]] = field(default_factory=list)
    alerts_: list[AlertHit] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    plate_queries: list[str] = field(default_factory=list)
    """The plate text each plates/plate_trajectory call received."""

    def refresh(self) -> None:
        self.calls.append(("refresh", None))

    def plates(self, query: str, *, mode: str = "exact", max_edits: int = 1, cameras: Collection[str] | None = None,
               start: datetime | None = None, end: datetime | None = None, limit: int = 100,
               lookalikes: bool = False) -> list[PlateHit]:
        self.calls.append(("plates", cameras))
        self.plate_queries.append(query)
        if mode == "wildcard":
            rx = re.compile("^" + re.escape(query).replace(r"\*", ".*").replace(r"\?", ".") + "$")
            match = lambda t: rx.match(t) is not None  # noqa: E731
        elif mode == "fuzzy":
            match = lambda t: _edits(query, t) <= max_edits  # noqa: E731
        else:
            match = lambda t: t == query  # noqa: E731
        hits = [h for h in self.plates_ if _in(cameras, h.camera_id) and _window(h.captured_at, start, end)
                and match(h.text)]
        hits = [PlateHit(**{**h.__dict__, "edits": _edits(query, h.text) if mode == "fuzzy" else 0}) for h in hits]
        return sorted(hits, key=lambda h: (h.edits, -h.captured_at.timestamp()))[:limit]

    def vehicles(self, *, vehicle_type: str | None = None, colour: str | None = None,
                 cameras: Collection[str] | None = None, start: datetime | None = None, end: datetime | None = None,
                 limit: int = 100) -> list[TrackHit]:
        self.calls.append(("vehicles", cameras))
        hits = [t for t in self.tracks_ if _in(cameras, t.camera_id) and _window(t.started_at, start, end)
                and (vehicle_type is None or t.vehicle_type == vehicle_type) and (colour is None or t.colour == colour)]
        return sorted(hits, key=lambda t: t.started_at, reverse=True)[:limit]

    def persons(self, *, upper: str | None = None, lower: str | None = None, cameras: Collection[str] | None = None,
                start: datetime | None = None, end: datetime | None = None, limit: int = 100) -> list[TrackHit]:
        from pipeline.search.service import colour_choices

        self.calls.append(("persons", cameras))
        uppers, lowers = colour_choices(upper, "upper colour"), colour_choices(lower, "lower colour")
        hits = [t for t in self.tracks_ if t.class_name == "person" and _in(cameras, t.camera_id)
                and _window(t.started_at, start, end) and (uppers is None or t.upper_colour in uppers)
                and (lowers is None or t.lower_colour in lowers)]
        return sorted(hits, key=lambda t: t.started_at, reverse=True)[:limit]

    def faces(self, embedding: np.ndarray, *, model_id: str, k: int = 20, threshold: float | None = None,
              cameras: Collection[str] | None = None, start: datetime | None = None,
              end: datetime | None = None) -> list[FaceHit]:
        self.calls.append(("faces", cameras))
        scored = []
        for hit, vec in self.faces_:
            if hit.model_id != model_id or not _in(cameras, hit.camera_id) or not _window(hit.captured_at, start, end):
                continue
            score = float(np.dot(vec, embedding))
            if threshold is None or score >= threshold:
                scored.append(FaceHit(**{**hit.__dict__, "score": score}))
        return sorted(scored, key=lambda h: -h.score)[:k]

    def face_embeddings(self, face_ids: Collection[str], *, cameras: Collection[str] | None = None
                        ) -> dict[str, np.ndarray]:
        self.calls.append(("face_embeddings", cameras))
        return {h.face_id: v for h, v in self.faces_ if h.face_id in face_ids and _in(cameras, h.camera_id)}

    def _sighting(self, kind: str, hit: Any) -> Sighting:
        name, lat, lon, _ = CAMERAS.get(hit.camera_id, (hit.camera_id, None, None, ""))
        t = getattr(hit, "captured_at", None) or hit.started_at
        sid = {"plate": getattr(hit, "read_id", ""), "face": getattr(hit, "face_id", "")}.get(kind) or \
            f"{hit.track_id}/{getattr(hit, 'segment', 0)}"
        return Sighting(kind=kind, id=sid, camera_id=hit.camera_id, camera_name=name, lat=lat, lon=lon, time=t,
                        crop_key=hit.crop_key, track_id=hit.track_id, clip_start=t - timedelta(seconds=2),
                        clip_end=t + timedelta(seconds=2), box=hit.box, text=getattr(hit, "text", None),
                        score=getattr(hit, "score", None))

    def plate_trajectory(self, plate: str, *, cameras: Collection[str] | None = None, start: datetime | None = None,
                         end: datetime | None = None) -> list[Sighting]:
        self.calls.append(("plate_trajectory", cameras))
        self.plate_queries.append(plate)
        hits = [h for h in self.plates_ if h.text == plate and _in(cameras, h.camera_id)
                and _window(h.captured_at, start, end)]
        return sorted((self._sighting("plate", h) for h in hits), key=lambda s: s.time)

    def face_trajectory(self, embedding: np.ndarray, *, model_id: str, threshold: float,
                        cameras: Collection[str] | None = None, start: datetime | None = None,
                        end: datetime | None = None) -> list[Sighting]:
        self.calls.append(("face_trajectory", cameras))
        hits = self.faces(embedding, model_id=model_id, k=1000, threshold=threshold, cameras=cameras, start=start,
                          end=end)
        return sorted((self._sighting("face", h) for h in hits), key=lambda s: s.time)

    def sighting(self, kind: str, sighting_id: str, *, cameras: Collection[str] | None = None) -> Sighting | None:
        self.calls.append(("sighting", cameras))
        pools: dict[str, list[Any]] = {"plate": self.plates_, "track": self.tracks_,
                                       "face": [h for h, _ in self.faces_]}
        for hit in pools[kind]:
            s = self._sighting(kind, hit)
            if s.id == sighting_id and _in(cameras, s.camera_id):
                return s
        return None

    def alerts(self, *, cameras: Collection[str] | None = None, start: datetime | None = None,
               end: datetime | None = None, alert_type: str | None = None, limit: int = 100) -> list[AlertHit]:
        self.calls.append(("alerts", cameras))
        hits = [a for a in self.alerts_ if _in(cameras, a.camera_id) and _window(a.occurred_at, start, end)
                and (alert_type is None or a.alert_type == alert_type)]
        return sorted(hits, key=lambda a: a.occurred_at, reverse=True)[:limit]

    def plate_reads(self, *, cameras: Collection[str] | None = None, start: datetime | None = None,
                    end: datetime | None = None, limit: int = 100) -> list[PlateHit]:
        self.calls.append(("plate_reads", cameras))
        hits = [h for h in self.plates_ if _in(cameras, h.camera_id) and _window(h.captured_at, start, end)]
        return sorted(hits, key=lambda h: h.captured_at)[:limit]

    def tracks(self, *, cameras: Collection[str] | None = None, start: datetime | None = None,
               end: datetime | None = None, limit: int = 100) -> list[TrackHit]:
        self.calls.append(("tracks", cameras))
        hits = [h for h in self.tracks_ if _in(cameras, h.camera_id) and (start is None or h.ended_at >= start)
                and (end is None or h.started_at < end)]
        return sorted(hits, key=lambda h: h.started_at)[:limit]

    def camera_status(self, *, cameras: Collection[str] | None = None) -> list[CameraState]:
        self.calls.append(("camera_status", cameras))
        out = []
        for cid, (name, lat, lon, unit) in sorted(CAMERAS.items()):
            if _in(cameras, cid):
                out.append(CameraState(camera_id=cid, name=name, latitude=lat, longitude=lon, admin_unit=unit,
                                       point_class="I", kind="rtsp", enabled=True, status="online",
                                       changed_at=T0, last_seen_at=T0, fps_in=25.0, fps_out=5.0))
        return out


def unit_vector(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def sample_search(crop_key: str = "crops/cam-a/x.jpg") -> FakeSearch:
    """Plates on three cameras (one car driving a→b→c), two vans and a car, two faces, two alerts."""
    fake = FakeSearch()
    route = [("cam-a", 0), ("cam-b", 60), ("cam-c", 120)]
    for i, (cam, dt) in enumerate(route):
        fake.plates_.append(PlateHit(read_id=f"{cam}:s:{i}.plate.0", track_id=f"{cam}:s:{i}", camera_id=cam,
                                     captured_at=T0 + timedelta(seconds=dt), text="川AF058Y", confidence=0.9,
                                     plate_kind="blue", region="cn", crop_key=crop_key, box=(1, 2, 30, 12),
                                     revision=0, model_id="plate-reader-cn@1"))
    fake.plates_.append(PlateHit(read_id="cam-a:s:9.plate.0", track_id="cam-a:s:9", camera_id="cam-a",
                                 captured_at=T0 + timedelta(seconds=30), text="川AF058X", confidence=0.8,
                                 plate_kind="blue", region="cn", crop_key=crop_key, box=(1, 2, 30, 12),
                                 revision=0, model_id="plate-reader-cn@1"))
    for i, (cam, vtype, colour) in enumerate([("cam-a", "van", "white"), ("cam-c", "van", "white"),
                                               ("cam-a", "car", "red")]):
        fake.tracks_.append(TrackHit(track_id=f"{cam}:v:{i}", segment=0, camera_id=cam,
                                     started_at=T0 + timedelta(seconds=10 * i), ended_at=T0 + timedelta(seconds=10 * i + 5),
                                     class_name="car", vehicle_type=vtype, colour=colour, colour_confidence=0.7,
                                     score=0.8, crop_key=crop_key, box=(0, 0, 50, 40)))
    for i, (cam, upper, lower) in enumerate([("cam-a", "red", "black"), ("cam-c", "red", "blue")]):
        fake.tracks_.append(TrackHit(track_id=f"{cam}:p:{i}", segment=0, camera_id=cam, started_at=T0,
                                     ended_at=T0 + timedelta(seconds=5), class_name="person", vehicle_type=None,
                                     colour=upper, colour_confidence=0.7, score=0.8, crop_key=None,
                                     box=(0, 0, 20, 50), upper_colour=upper, lower_colour=lower))
    for i, cam in enumerate(["cam-a", "cam-c"]):
        hit = FaceHit(face_id=f"{cam}:p:{i}.face.1", track_id=f"{cam}:p:{i}", camera_id=cam,
                      captured_at=T0 + timedelta(seconds=5 + i), score=0.0, quality=0.8, crop_key=crop_key,
                      box=(0, 0, 20, 20), model_id="fake-embedder@1")
        fake.faces_.append((hit, unit_vector(i)))
    for i, cam in enumerate(["cam-a", "cam-c"]):
        fake.alerts_.append(AlertHit(alert_id=f"alert-{i}", alert_type="zone_intrusion", camera_id=cam,
                                     occurred_at=T0 + timedelta(seconds=i), severity="high", rule_id="r1",
                                     track_id=None, message=f"intrusion on {cam}"))
    return fake


class FakeAnalyzer:
    """Stands in for the zoo's FaceAnalyzer: the image's mean colour picks which fake person it shows.

    A mostly-red image is person 0, mostly-green person 1; a dark image is a low-quality face; a white
    image has no face; a blue image has two faces.
    """

    threshold = 0.5

    class embedder:  # noqa: N801 - mirrors analyzer.embedder.model_id
        model_id = "fake-embedder@1"

    def analyze(self, image: np.ndarray) -> Detections:
        b, g, r = (float(image[..., c].mean()) for c in range(3))
        if min(b, g, r) > 200:
            return Detections.empty()
        n = 2 if b > 150 and r < 100 else 1
        dark = max(b, g, r) < 40
        person = 0 if r >= g else 1
        emb = np.stack([unit_vector(person)] * n)
        xyxy = np.tile(np.array([[10, 10, 60, 70]], np.float32), (n, 1))
        return Detections(xyxy=xyxy, confidence=np.full(n, 0.9, np.float32), class_id=np.zeros(n, np.int64)).with_data(
            landmarks=np.zeros((n, 5, 2), np.float32), embedding=emb,
            quality=np.full(n, 0.05 if dark else 0.8, np.float32), eye_distance=np.full(n, 8.0 if dark else 40.0),
            sharpness=np.full(n, 10.0 if dark else 100.0), yaw=np.zeros(n), pitch=np.zeros(n), roll=np.zeros(n))


def solid_jpeg(bgr: tuple[int, int, int]) -> bytes:
    import cv2

    image = np.zeros((80, 80, 3), np.uint8)
    image[:] = bgr
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def write_recording(store: Any, camera_id: str, start: datetime, seconds: float, *, fps: int = 10,
                    segment_s: float = 4.0, codec: str = "libx264", size: tuple[int, int] = (320, 240),
                    frame: Callable[[int], np.ndarray] | None = None, crf: int | None = None) -> int:
    """Record a synthetic moving scene as segments + day index, the way the ingest recorder lays them out.

    ``codec`` ``libx264`` gives H.264 in MPEG-TS segments; ``mpeg4`` gives MPEG-4 part 2 (re-encoded on
    export). ``frame(n)`` draws frame ``n`` (BGR, ``size``); default: a yellow block sliding along a dark
    frame. Returns the number of segments written.
    """
    import tempfile
    from pathlib import Path

    import av

    from pipeline.recordings import SegmentEntry, save_index, segment_key

    width, height = size
    frames_total = int(round(seconds * fps))
    per_segment = int(round(segment_s * fps))
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for first in range(0, frames_total, per_segment):
            count = min(per_segment, frames_total - first)
            seg_start = start + timedelta(seconds=first / fps)
            path = Path(tmp) / f"seg{first}.ts"
            with av.open(str(path), "w", format="mpegts") as out:
                stream = out.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.gop_size = fps
                if codec == "libx264":
                    stream.options = {"preset": "ultrafast", "tune": "zerolatency",
                                      **({"crf": str(crf)} if crf is not None else {})}
                for i in range(count):
                    if frame is not None:
                        img = frame(first + i)
                    else:
                        img = np.full((height, width, 3), 40, np.uint8)
                        x = (first + i) * 4 % (width - 40)
                        img[100:140, x:x + 40] = (30, 200, 240)
                    video_frame = av.VideoFrame.from_ndarray(img, format="bgr24")
                    video_frame.pts = i
                    out.mux(stream.encode(video_frame))
                out.mux(stream.encode(None))
            key = segment_key("recordings", camera_id, seg_start, ".ts")
            store.put(key, path, content_type="video/mp2t")
            end = seg_start + timedelta(seconds=count / fps)
            entries.append(SegmentEntry(key=key, start=seg_start.isoformat(), end=end.isoformat(), start_pts=0.0,
                                        duration_s=count / fps, packets=count, keyframes=max(1, count // fps),
                                        bytes=path.stat().st_size, codec="h264" if codec == "libx264" else codec,
                                        width=width, height=height, after_gap=False))
    save_index(store, "recordings", camera_id, start.strftime("%Y-%m-%d"), entries)
    return len(entries)


PASSWORD = "correct horse battery"
USERS = {  # name: (role, scope kwargs)
    "boss": ("admin", {"all_cameras": True}),
    "ann": ("investigator", {"all_cameras": True}),
    "ivy": ("investigator", {"units": ("510104",)}),  # cam-a and cam-b, not cam-c
    "otto": ("operator", {"all_cameras": True}),
    "aud": ("auditor", {"all_cameras": True}),
    "nemo": ("investigator", {}),  # no camera at all
}


def register_cameras(store: Any) -> None:
    from pipeline.cameras.registry import CameraRegistry
    from pipeline.config.ingest import CameraSpec

    registry = CameraRegistry(store)
    for cid, (name, lat, lon, unit) in CAMERAS.items():
        registry.put(CameraSpec(id=cid, name=name, latitude=lat, longitude=lon, admin_unit=unit, kind="rtsp",
                                url=f"rtsp://10.0.0.1/{cid}"))


_USER_RECORDS: list[Any] = []


def add_users(store: Any) -> None:
    """The USERS, all with PASSWORD (hashed once per test session: scrypt is slow on purpose)."""
    from workers.api.users import Role, Scope, User, UserStore, hash_password, utc_now

    if not _USER_RECORDS:
        password_hash = hash_password(PASSWORD)
        _USER_RECORDS.extend(User(name=name, role=Role(role), scope=Scope(**scope), password_hash=password_hash,
                                  created_at=utc_now()) for name, (role, scope) in USERS.items())
    users = UserStore(store)
    for user in _USER_RECORDS:
        users.put(user)
    open_test_case(store)


TEST_CASE = "CASE-2024-0042"
CASE_MEMBERS = ("boss", "ann", "ivy", "nemo")
"""Members (investigator role; ann leads) of the open case the API tests search under."""


def open_test_case(store: Any, number: str = TEST_CASE, members: tuple[str, ...] = CASE_MEMBERS,
                   owner: str = "ann") -> Any:
    """An open case ``number`` with ``members`` (the register record the API checks), unless it exists."""
    from pipeline.cases.records import CaseRegister, MemberRole

    register = CaseRegister(store)
    return register.get(number) or register.open(
        number=number, title="Test case", case_type="criminal", unit="510104", legal_basis="test",
        purpose="tests", owner=owner, members={m: MemberRole.INVESTIGATOR for m in members})


def login(client: Any, name: str) -> str:
    """Log ``client`` in as ``name``; returns the CSRF token (and sets it as a default header)."""
    response = client.post("/api/session", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    csrf = response.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def site_context(tmp_path: Any) -> Any:
    """An API context over a local store with the sample cameras and users and the sample search service."""
    from pipeline.config import TubelineConfig
    from pipeline.config.api import ApiConfig
    from pipeline.store.local import LocalStore
    from workers.api.context import build_context

    store = LocalStore(tmp_path / "store")
    register_cameras(store)
    add_users(store)
    return build_context(TubelineConfig(), store=store, search=sample_search(), face_analyzer_factory=FakeAnalyzer,
                         audit_writer="test", api=ApiConfig(cache_dir=str(tmp_path / "cache")))
