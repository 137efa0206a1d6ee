"""API hardening (issue 13, deliverable 5): what a hostile or careless client can no longer do.

Image bombs are refused from their header (and the process stays small), bodies are cut off while they
stream in, the login throttle cannot be turned against other users, media links and live streams follow
the user's current role and scope, tokens expire, malformed IDs are 422 (never 500), refusals and
downloads are audited, per-user quotas hold, and plate SQL carries no query text.
"""

from __future__ import annotations

import asyncio
import json
import resource
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
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
from workers.api.bodylimit import BodyLimit
from workers.api.context import ApiContext, build_context
from workers.api.images import ImageRefused, check_image, read_header
from workers.api.serve import start_api
from workers.api.users import Scope, UserStore
from workers.cli import main

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


def make_ctx(store: LocalStore, fake: FakeSearch, tmp_path: Path, **api: Any) -> ApiContext:
    return build_context(TubelineConfig(), store=store, search=fake, face_analyzer_factory=FakeAnalyzer,
                         audit_writer="test", api=ApiConfig(cache_dir=str(tmp_path / "cache"), **api))


@pytest.fixture
def ctx(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> ApiContext:
    return make_ctx(store, fake, tmp_path)


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


def refusals(store: LocalStore, n: int = 20) -> list[dict]:
    return [e for e in tail(store, n) if e.get("outcome") != "ok"]


# -- image headers ----------------------------------------------------------------------------------------------
def _encoded(ext: str, size: tuple[int, int], params: tuple[int, ...] = ()) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(("ext", "params", "fmt"), [
    (".jpg", (), "JPEG"),
    (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "JPEG"),
    (".png", (), "PNG"),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "WebP"),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "WebP"),  # lossless: VP8L
    (".bmp", (), "BMP"),
])
def test_header_gives_the_dimensions_the_decoder_gets(ext: str, params: tuple[int, ...], fmt: str) -> None:
    data = _encoded(ext, (123, 77), params)
    header = read_header(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (header.format, header.width, header.height) == (fmt, 123, 77) == (fmt, decoded.shape[1], decoded.shape[0])


def test_jpeg_header_found_after_large_exif_like_segments() -> None:
    data = _encoded(".jpg", (64, 48))
    app1 = b"\xff\xe1" + struct.pack(">H", 60002) + b"E" * 60000
    padded = data[:2] + app1 * 3 + data[2:]
    assert (read_header(padded).width, read_header(padded).height) == (64, 48)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not an image this server accepts"),
    (b"GIF89a" + b"\x00" * 20, "not an image this server accepts"),
    (b"II*\x00" + b"\x00" * 40, "not an image this server accepts"),  # TIFF: OpenCV would decode it, we do not
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "not a valid PNG"),
    (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 10, "not a valid JPEG"),  # scan before any frame header
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00\x03" + b"\x00" * 12, "not a valid JPEG"),  # height 0 (DNL)
    (b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 4 + b"\x02" + b"\x00" * 20, "animated WebP"),
])
def test_malformed_or_unsupported_images_are_422(data: bytes, message: str) -> None:
    with pytest.raises(ImageRefused) as refused:
        read_header(data)
    assert refused.value.status == 422 and message in str(refused.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", b"BM", b""]),
       rest=st.binary(max_size=200))
def test_header_parser_never_fails_otherwise(prefix: bytes, rest: bytes) -> None:
    try:
        header = check_image(prefix + rest, 40_000_000)
    except ImageRefused as exc:
        assert exc.status in (413, 422)
    else:
        assert 0 < header.pixels <= 40_000_000


def png_bomb(side: int = 32768, rows_per_block: int = 256) -> bytes:
    """A valid ~1 MB grayscale PNG of side × side pixels (1 GiB inflated, 3 GiB as BGR): identical deflate
    segments of zero rows after full flushes, repeated, then an empty final block and the right Adler-32."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    block = (b"\x00" * (side + 1)) * rows_per_block
    comp = zlib.compressobj(9)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    segment = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(side // rows_per_block):
        adler = zlib.adler32(block, adler)
    idat = first[:len(first) - len(segment)] + segment * (side // rows_per_block) + b"\x03\x00" + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    status = Path("/proc/self/status").read_text()
    current = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return current / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_png_bomb_is_refused_from_its_header_and_the_process_stays_small(client: TestClient,
                                                                          store: LocalStore) -> None:
    bomb = png_bomb()
    assert len(bomb) < 1_100_000 and read_header(bomb).pixels == 32768 ** 2
    login(client, "ann")
    before, peak_before = _rss_mb()
    response = client.post("/api/search/faces", data={"case": CASE}, files={"image": ("bomb.png", bomb, "image/png")})
    after, peak_after = _rss_mb()
    assert response.status_code == 413 and "32768x32768" in response.json()["detail"]
    # decoding it would take 3 GiB (BGR); the refusal costs the upload's bytes and little more
    assert after - before < 64 and peak_after - max(peak_before, before) < 64, (before, after, peak_before, peak_after)
    entry = tail(store, 1)[0]
    assert entry["action"] == "search.faces" and entry["status"] == 413 and entry["outcome"] == "refused"


# -- request body limit ------------------------------------------------------------------------------------------
class _Echo:
    """An app that reads its whole body and answers its length."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})


def _run_limited(headers: list[tuple[bytes, bytes]], chunks: int, chunk_size: int = 65536) -> tuple[int, int]:
    """(bytes the client handed over, exception status) for a body of ``chunks`` chunks through BodyLimit."""
    handed = 0

    async def receive() -> dict:
        nonlocal handed
        handed += chunk_size
        return {"type": "http.request", "body": b"x" * chunk_size, "more_body": handed < chunks * chunk_size}

    async def send(message: dict) -> None:
        return None

    app = BodyLimit(_Echo(), default_bytes=1_000_000, upload_bytes=10_000_000, upload_paths=("/up",))
    scope = {"type": "http", "path": "/x", "headers": headers, "method": "POST"}
    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:  # BodyTooLarge is an HTTPException
        return handed, getattr(exc, "status_code", 0)
    return handed, 200


def test_body_limit_refuses_a_declared_length_before_reading_a_byte() -> None:
    handed, status = _run_limited([(b"content-length", b"50000000")], chunks=800)
    assert (handed, status) == (0, 413)


def test_body_limit_cuts_a_chunked_body_off_while_it_streams() -> None:
    handed, status = _run_limited([(b"transfer-encoding", b"chunked")], chunks=10_000)  # 655 MB offered
    assert status == 413 and handed <= 1_000_000 + 65536
    assert _run_limited([], chunks=10) == (655360, 200)  # under the limit: read to the end


def test_oversized_bodies_get_413_and_are_audited(client: TestClient, store: LocalStore, ctx: ApiContext) -> None:
    login(client, "ann")
    big = {"kind": "plate", "id": "x", "case": CASE, "pad": "y" * (ctx.api.max_body_bytes + 10)}
    response = client.post("/api/exports", content=json.dumps(big), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    entry = tail(store, 1)[0]
    assert (entry["user"], entry["action"], entry["status"]) == ("ann", "export.clip", 413)
    upload = b"\xff\xd8\xff" + b"\x00" * (ctx.api.max_upload_bytes + 100_000)
    response = client.post("/api/search/faces", data={"case": CASE}, files={"image": ("q.jpg", upload)})
    assert response.status_code == 413


# -- login throttling ---------------------------------------------------------------------------------------------
def _attempt(app: Any, address: str, name: str, password: str, cookies: httpx.Cookies | None = None) -> httpx.Response:
    with TestClient(app, client=(address, 40000), cookies=cookies) as c:
        return c.post("/api/session", json={"username": name, "password": password})


def test_unknown_names_do_not_lock_known_users(ctx: ApiContext) -> None:
    app = create_app(ctx, start_background=False)
    for i in range(12):
        assert _attempt(app, "10.0.0.1", f"nobody{i % 3}", "guess").status_code in (401, 429)
    assert _attempt(app, "10.0.0.1", "boss", PASSWORD).status_code == 200


def test_a_pair_locks_only_itself_and_says_when_to_retry(ctx: ApiContext, store: LocalStore) -> None:
    app = create_app(ctx, start_background=False)
    for _ in range(5):
        assert _attempt(app, "10.0.0.9", "boss", "guess").status_code == 401
    locked = _attempt(app, "10.0.0.9", "boss", PASSWORD)
    assert locked.status_code == 429 and 800 <= int(locked.headers["Retry-After"]) <= 900
    assert _attempt(app, "10.0.0.7", "boss", PASSWORD).status_code == 200  # the same user elsewhere
    assert _attempt(app, "10.0.0.9", "ann", PASSWORD).status_code == 200  # another user behind that address
    entry = tail(store, 5, action="auth.login")
    assert [(e["user"], e["status"]) for e in entry][-3:] == [("boss", 429), ("boss", 200), ("ann", 200)]


def test_a_name_attacked_from_many_addresses_stays_open_to_its_known_browser(store: LocalStore, fake: FakeSearch,
                                                                             tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(store, fake, tmp_path, login_max_failures_per_name=6)
    app = create_app(ctx, start_background=False)
    with TestClient(app, client=("10.1.0.1", 1)) as browser:
        assert browser.post("/api/session", json={"username": "ann", "password": PASSWORD}).status_code == 200
        device = httpx.Cookies({"tubeline_device": browser.cookies.get("tubeline_device")})
    for i in range(6):
        assert _attempt(app, f"10.2.0.{i}", "ann", "guess").status_code == 401
    assert _attempt(app, "10.3.0.1", "ann", PASSWORD).status_code == 429  # a new browser, anywhere
    assert _attempt(app, "10.3.0.1", "ann", PASSWORD, cookies=device).status_code == 200  # her own browser
    other = httpx.Cookies({"tubeline_device": ctx.media.device_cookie("boss", 1)})
    assert _attempt(app, "10.3.0.2", "ann", PASSWORD, cookies=other).status_code == 429  # boss's cookie is not hers
    monkeypatch.setenv("TUBELINE_STORE__LOCAL__ROOT", str(store.root))
    unlocked = CliRunner().invoke(main, ["users", "unlock", "ann"])
    assert unlocked.exit_code == 0 and "6 recent failed login(s) cleared" in unlocked.output
    assert _attempt(app, "10.3.0.1", "ann", PASSWORD).status_code == 200


# -- media links and streams follow the user's current rights -----------------------------------------------------
def test_media_links_follow_role_and_scope_and_every_fetch_is_audited(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    hits = client.get("/api/search/plates", params={"q": "川AF058Y"}).json()["hits"]
    url = next(h["crop_url"] for h in hits if h["camera_id"] == "cam-a")
    assert client.get(url).status_code == 200
    fetched = tail(store, 1)[0]
    assert (fetched["action"], fetched["outcome"], fetched["exported_keys"]) == ("media.get", "ok", ["crops/cam-a/x.jpg"])
    users = UserStore(store)
    users.update("ann", scope=Scope(units=("510116",)))  # cam-c only: cam-a leaves her scope
    assert client.get(url).status_code == 404
    users.update("ann", scope=Scope(all_cameras=True), role="auditor")  # back in scope, but may no longer view
    assert client.get(url).status_code == 403
    users.update("ann", role="investigator")
    assert client.get(url).status_code == 200
    assert [(e["status"], e["outcome"]) for e in tail(store, 4, action="media.get")] == [
        (200, "ok"), (404, "refused"), (403, "refused"), (200, "ok")]


def _stream(url: str, headers: dict[str, str], events: list[str], opened: threading.Event) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=15) as http, \
            http.stream("GET", "/api/alerts/stream") as response:
        assert response.status_code == 200
        opened.set()
        for line in response.iter_lines():
            events.append(line)


@pytest.mark.parametrize("change", ["revoke token", "narrow scope", "demote"])
def test_open_alert_stream_closes_when_access_changes(store: LocalStore, fake: FakeSearch, tmp_path: Path,
                                                      change: str) -> None:
    api = ApiConfig(cache_dir=str(tmp_path / "cache"), port=0, stream_recheck_s=0.3, sse_keepalive_s=0.2)
    server = start_api(TubelineConfig(), store=store, search=fake, bootstrap=False, api=api)
    users = UserStore(store)
    token = users.create_token("otto", "wall screen")
    events: list[str] = []
    opened = threading.Event()
    reader = threading.Thread(target=_stream, args=(server.url, {"Authorization": f"Bearer {token}"}, events, opened),
                              daemon=True)
    try:
        reader.start()
        assert opened.wait(10)
        time.sleep(0.8)
        assert not any(line.startswith("event: closed") for line in events)  # nothing changed: it stays open
        changed = time.monotonic()
        if change == "revoke token":
            users.revoke_token("otto", token.split("_")[1])
        elif change == "narrow scope":
            users.update("otto", scope=Scope(cameras=("cam-a",)))
        else:
            users.update("otto", role="auditor")
        reader.join(timeout=10)
        assert not reader.is_alive(), "the stream did not close"
        assert time.monotonic() - changed < 3.0
        reason = json.loads(next(line for line in events if line.startswith("data: {\"reason\""))[6:])["reason"]
        assert {"revoke token": "revoked", "narrow scope": "scope changed", "demote": "may no longer"}[change] in reason
        closed = tail(store, 1, action="alerts.stream")[0]
        assert closed["outcome"] == "closed" and closed["user"] == "otto"
    finally:
        server.stop()


# -- tokens with an expiry --------------------------------------------------------------------------------------
def test_tokens_expire(client: TestClient, store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = UserStore(store)
    token = users.create_token("ann", "ci", expires_at=datetime.now(UTC) + timedelta(hours=1))
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/cameras", headers=auth).status_code == 200
    record_key = f"auth/tokens/{token.split('_')[1]}.json"
    record = json.loads(store.get(record_key))
    record["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    store.put(record_key, json.dumps(record).encode())
    assert client.get("/api/cameras", headers=auth).status_code == 401
    with pytest.raises(ValueError, match="future"):
        users.create_token("ann", "x", expires_at=datetime.now(UTC) - timedelta(days=1))
    monkeypatch.setenv("TUBELINE_STORE__LOCAL__ROOT", str(store.root))
    made = CliRunner().invoke(main, ["users", "token", "ann", "--expires", "30d"])
    assert made.exit_code == 0 and made.output.startswith("tl_") and "valid until" in made.output
    listed = json.loads(CliRunner().invoke(main, ["users", "list", "--json"]).output)
    expiry = next(t["expires_at"] for u in listed if u["name"] == "ann" for t in u["tokens"] if t["label"] == "")
    assert abs(datetime.fromisoformat(expiry) - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert CliRunner().invoke(main, ["users", "token", "ann", "--expires", "soon"]).exit_code != 0


# -- every ID by pattern: 4xx, never 500 ------------------------------------------------------------------------
MALFORMED = [
    "/api/synopses/coverage?camera=..",
    "/api/synopses/coverage?camera=a/b",
    "/api/synopses/coverage?camera=%2e%2e%2fauth",
    "/api/synopses?camera=..",
    "/api/synopses/../0123456789abcdef0123456789abcdef",
    "/api/synopses/cam-a/not-an-id",
    "/api/synopses/.x/0123456789abcdef0123456789abcdef/video.mp4",
    "/api/synopses/cam-a/0123456789abcdef0123456789abcdef/objects/-1",
    "/api/search/plates?q=A&camera=..",
    "/api/search/vehicles?camera=%00",
    "/api/alerts?camera=../x",
    "/api/sighting?kind=plate&id=../../auth/users/boss",
    "/api/exports/..%2f..%2fauth/clip.mp4",
    "/api/exports/20260501T080000-zzzzzzzzzzzz/clip.mp4",
    "/api/media/not-a-token",
    "/api/audit?user=../x",
    "/api/search/plates?q=A&start=1714550400",
    "/api/search/plates?q=A&start=2026-05-01",
]


def test_malformed_ids_are_refused_not_500(client: TestClient, store: LocalStore) -> None:
    login(client, "boss")
    wrong = []
    for path in MALFORMED:
        response = client.get(path)
        if response.status_code not in (404, 422):
            wrong.append((path, response.status_code))
        elif response.status_code == 422:
            entry = tail(store, 1)[0]
            if (entry["user"], entry["outcome"]) != ("boss", "invalid"):
                wrong.append((path, "not audited as invalid"))
    assert wrong == []


# -- refusals and downloads are audited -----------------------------------------------------------------------------
def test_anonymous_refusals_are_audited_without_flooding_the_log(client: TestClient, store: LocalStore,
                                                                 ctx: ApiContext) -> None:
    for _ in range(5):
        assert client.get("/api/cameras").status_code == 401
    entries = [e for e in tail(store, 10) if e["status"] == 401]
    assert len(entries) == 1 and entries[0]["user"] is None and entries[0]["client"] == "testclient"
    ctx.anonymous._last["testclient"] = (time.monotonic() - 60, 4)  # the window has passed
    assert client.get("/api/search/plates", params={"q": "A"}).status_code == 401
    latest = tail(store, 1)[0]
    assert latest["repeats"] == 4 and latest["params"]["path"] == "/api/search/plates"


def test_csrf_refusals_and_scope_404s_are_audited(client: TestClient, store: LocalStore) -> None:
    login(client, "ivy")
    response = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": CASE},
                           headers={"X-CSRF-Token": "forged"})
    assert response.status_code == 403
    entry = tail(store, 1)[0]
    assert (entry["user"], entry["status"], entry["action"]) == ("ivy", 403, "export.clip") and "CSRF" in entry["reason"]
    assert client.get("/api/sighting", params={"kind": "plate", "id": "cam-c:s:2.plate.0"}).status_code == 404
    entry = tail(store, 1)[0]
    assert (entry["status"], entry["outcome"]) == (404, "refused") and "scope" in entry["reason"]


def test_export_downloads_are_audited_and_refusals_too(client: TestClient, store: LocalStore) -> None:
    write_recording(store, "cam-a", T0 - timedelta(seconds=6), 14)
    login(client, "ann")
    export = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": CASE}).json()
    assert client.get(export["url"]).status_code == 200
    assert client.get(export["url"], headers={"Range": "bytes=100-199"}).status_code == 206  # the player's follow-up
    login(client, "ivy")
    assert client.get(export["url"]).status_code == 404
    downloads = tail(store, 5, action="export.download")
    assert [(e["user"], e["status"]) for e in downloads] == [("ann", 200), ("ivy", 404)]
    assert downloads[0]["exported_keys"] == [export["key"]] and downloads[0]["case"] == CASE


# -- per-user quotas ------------------------------------------------------------------------------------------
def test_synopsis_builds_are_limited_per_user(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> None:
    ctx = make_ctx(store, fake, tmp_path, synopsis_max_pending=2, synopsis_max_per_hour=3)
    write_recording(store, "cam-a", T0, 60, segment_s=10)
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")

        def ask(minute: int) -> httpx.Response:
            start = T0 + timedelta(seconds=minute)
            return client.post("/api/synopses", json={"camera_id": "cam-a", "start": start.isoformat(),
                                                      "end": (start + timedelta(seconds=20)).isoformat()})

        first, second = ask(0), ask(1)
        assert first.status_code == second.status_code == 200
        assert ask(0).status_code == 200  # the same synopsis again costs nothing
        third = ask(2)
        assert third.status_code == 429 and "queued or building" in third.json()["detail"]
        assert int(third.headers["Retry-After"]) >= 1
        for made in (first, second):  # the builds finish
            status_key = f"synopsis/cam-a/{made.json()['synopsis_id']}.status.json"
            doc = json.loads(store.get(status_key))
            store.put(status_key, json.dumps({**doc, "state": "empty"}).encode())
        assert ask(2).status_code == 200
        fourth = ask(3)
        assert fourth.status_code == 429 and "per hour" in fourth.json()["detail"]
        assert 3000 < int(fourth.headers["Retry-After"]) <= 3600
        login(client, "boss")  # another user has a quota of their own
        assert ask(3).status_code == 200
    entry = [e for e in tail(store, 10, action="synopsis.request") if e["status"] == 429]
    assert [e["user"] for e in entry] == ["ann", "ann"]


def test_exports_are_limited_per_user(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> None:
    ctx = make_ctx(store, fake, tmp_path, exports_max_per_hour=2)
    write_recording(store, "cam-a", T0 - timedelta(seconds=6), 14)
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        body = {"kind": "plate", "id": "cam-a:s:0.plate.0", "case": CASE}
        assert [client.post("/api/exports", json=body).status_code for _ in range(3)] == [200, 200, 429]


# -- SQL and the contract -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "query"), [("exact", "川AF058Y"), ("wildcard", "川A*58?"), ("fuzzy", "川AF058Z"),
                                            ("lookalikes", "川AF058Y")])
def test_plate_sql_text_holds_no_query_text(mode: str, query: str) -> None:
    if mode == "lookalikes":
        clause, params, edits, edits_params, order = SearchService._lookalike_match(query)
    else:
        clause, params, edits, edits_params, order = SearchService._plate_match(query, mode, 2)
    sql = " ".join((clause, edits, order))
    assert "川" not in sql and "058" not in sql and "'" not in sql.replace("'\\'", "")
    assert any("58" in str(p) for p in [*params, *edits_params])  # the query travels as parameters


def test_openapi_lists_every_status_with_its_schema(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            statuses = set(op["responses"])
            if (method, path) != ("post", "/api/session"):
                assert {"400", "401", "403", "413", "422", "503"} <= statuses, (method, path)
                assert op["security"] == [{"bearer": []}, {"session": []}]
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.endswith("ValidationErrorOut" if status == "422" else "ErrorOut"), (path, status)
                if status == "429":
                    assert "Retry-After" in response["headers"]
    assert "429" in spec["paths"]["/api/synopses"]["post"]["responses"]
    assert "429" in spec["paths"]["/api/exports"]["post"]["responses"]
    export = spec["components"]["schemas"]["ExportRequest"]
    assert "case" in export["required"]  # an export always needs one (400 with the reason without it)
    assert export["properties"]["case"]["pattern"] == client.app.state.ctx.case_re.pattern  # type: ignore[attr-defined]
    synopsis_case = spec["components"]["schemas"]["SynopsisRequestIn"]["properties"]["case"]["anyOf"][0]
    assert synopsis_case["pattern"] == export["properties"]["case"]["pattern"]  # optional there
    form = next(v for k, v in spec["components"]["schemas"].items() if k.startswith("Body_search_faces"))
    assert all("anyOf" not in field or all(b.get("type") != "null" for b in field["anyOf"])
               for field in form["properties"].values())  # a form part cannot be null
    coverage = {p["name"]: p["schema"] for p in spec["paths"]["/api/synopses/coverage"]["get"]["parameters"]}
    assert ".." not in coverage["camera"]["pattern"] and coverage["camera"]["pattern"].startswith("^[A-Za-z0-9]")


def test_a_405_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("PUT", "/api/session")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"DELETE", "GET", "HEAD", "POST"}


def test_refusals_before_any_endpoint_runs_are_audited(client: TestClient, store: LocalStore) -> None:
    bad_json = client.post("/api/session", content=b"\xff\xfe not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code in (400, 422)
    entry = tail(store, 1)[0]
    assert entry["user"] is None and entry["status"] == bad_json.status_code and entry["action"] == "auth.login"
    login(client, "ann")
    response = client.post("/api/exports", content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    entry = tail(store, 1)[0]
    assert (entry["user"], entry["action"], entry["outcome"]) == ("ann", "export.clip", "invalid")


def test_users_set_changes_role_scope_and_disabled_at_once(client: TestClient, store: LocalStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    login(client, "ann")
    assert client.get("/api/search/plates", params={"q": "川AF058Y"}).json()["count"] == 3
    monkeypatch.setenv("TUBELINE_STORE__LOCAL__ROOT", str(store.root))
    runner = CliRunner()
    changed = runner.invoke(main, ["users", "set", "ann", "--role", "operator", "--unit", "510116"])
    assert changed.exit_code == 0 and "ann (operator), scope: units 510116" in changed.output
    hits = client.get("/api/search/plates", params={"q": "川AF058Y"}).json()["hits"]
    assert [h["camera_id"] for h in hits] == ["cam-c"]  # the same session, the new scope
    assert client.get("/api/trajectory/plate", params={"plate": "川AF058Y", "case": CASE}).status_code == 403
    assert runner.invoke(main, ["users", "set", "ann", "--disable"]).exit_code == 0
    assert client.get("/api/cameras").status_code == 401  # the session ended with the disable
    assert client.post("/api/session", json={"username": "ann", "password": PASSWORD}).status_code == 401
    assert runner.invoke(main, ["users", "set", "nobody", "--enable"]).exit_code == 1
