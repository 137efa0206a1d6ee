"""API authentication, sessions, CSRF, roles, case references, errors — against the fake search service.

Every test also checks what the audit log recorded for the calls it made.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.search.hits import AlertHit, CameraState, FaceHit, PlateHit, Sighting, TrackHit
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import (
    PASSWORD,
    FakeAnalyzer,
    FakeSearch,
    add_users,
    login,
    register_cameras,
    sample_search,
    solid_jpeg,
)
from workers.api.app import create_app
from workers.api.audit import tail, verify
from workers.api.context import ApiContext, build_context
from workers.api.users import UserStore, bootstrap_admin, hash_password, verify_password
from workers.cli import main

RED, DARK, WHITE, BLUE = (0, 0, 230), (10, 10, 10), (255, 255, 255), (230, 60, 30)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    register_cameras(s)
    add_users(s)
    return s


@pytest.fixture
def fake() -> FakeSearch:
    return sample_search()


@pytest.fixture
def ctx(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> ApiContext:
    api_store = ScopedStore(store, access_matrix(TubelineConfig())["api"])  # the API identity's rights only
    return build_context(TubelineConfig(), store=api_store, search=fake, face_analyzer_factory=FakeAnalyzer,
                         audit_writer="test", api=ApiConfig(cache_dir=str(tmp_path / "cache")))


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


def last(store: LocalStore, n: int = 1) -> list[dict]:
    return tail(store, n)


# -- passwords, tokens, bootstrap --------------------------------------------------------------------
def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    a, b = hash_password("secret-secret"), hash_password("secret-secret")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert verify_password("secret-secret", a) and not verify_password("secret-secreT", a)
    assert not verify_password("x", "garbage")


def test_bootstrap_creates_one_admin_once(tmp_path: Path) -> None:
    s = LocalStore(tmp_path / "s")
    password = bootstrap_admin(s)
    assert password and len(password) >= 16
    user = UserStore(s).authenticate_password("admin", password)
    assert user is not None and user.role.value == "admin" and user.scope.all_cameras
    assert bootstrap_admin(s) is None
    assert password not in (s.root / "auth" / "users" / "admin.json").read_text()


def test_token_is_shown_once_stored_hashed_and_revocable(store: LocalStore, client: TestClient) -> None:
    users = UserStore(store)
    token = users.create_token("ann", "script")
    token_id = token.split("_")[1]
    stored = (store.root / "auth" / "tokens" / f"{token_id}.json").read_text()
    assert token.split("_", 2)[2] not in stored
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/search/plates", params={"q": "川AF058Y"}, headers=auth).status_code == 200
    assert client.get("/api/search/plates", params={"q": "川AF058Y"},
                      headers={"Authorization": f"Bearer {token[:-1]}x"}).status_code == 401
    assert users.revoke_token("ann", token_id)
    assert client.get("/api/search/plates", params={"q": "川AF058Y"}, headers=auth).status_code == 401
    entries = last(store, 2)
    assert entries[0]["via"] == "token" and entries[0]["outcome"] == "ok"
    assert entries[1]["user"] is None and entries[1]["status"] == 401  # refusals are audited (coalesced per client)


# -- sessions and CSRF -----------------------------------------------------------------------------------
def test_login_cookie_flags_and_session(client: TestClient, store: LocalStore) -> None:
    response = client.post("/api/session", json={"username": "ann", "password": PASSWORD})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    session = client.get("/api/session").json()
    assert session["user"]["name"] == "ann" and session["csrf"] == response.json()["csrf"]
    assert "password_hash" not in str(session)
    sid = client.cookies.get("tubeline_session")
    assert sid and sid not in "".join(p.read_text() for p in (store.root / "auth" / "sessions").glob("*.json"))
    assert last(store)[0]["action"] == "auth.login"


def test_unauthenticated_calls_are_refused(client: TestClient) -> None:
    assert client.get("/api/search/plates", params={"q": "A"}).status_code == 401
    assert client.get("/api/cameras").status_code == 401
    assert client.get("/api/session").status_code == 401


def test_csrf_token_needed_for_state_changing_calls(client: TestClient) -> None:
    login(client, "ann")
    data = {"case": "CASE-2024-0042"}
    files = {"image": ("q.jpg", solid_jpeg(RED), "image/jpeg")}
    no_token = client.post("/api/search/faces", data=data, files=files, headers={"X-CSRF-Token": ""})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    cross = client.post("/api/search/faces", data=data, files=files, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.post("/api/search/faces", data=data, files=files).status_code == 200


def test_wrong_password_is_audited_and_throttled(client: TestClient, store: LocalStore) -> None:
    for _ in range(5):
        assert client.post("/api/session", json={"username": "ann", "password": "wrong"}).status_code == 401
    assert client.post("/api/session", json={"username": "ann", "password": PASSWORD}).status_code == 429
    entries = last(store, 6)
    assert [e["outcome"] for e in entries] == ["refused"] * 6 and entries[0]["user"] == "ann"
    assert all("wrong" not in str(e["params"]) for e in entries)


def test_logout_and_password_change_end_sessions(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    assert client.delete("/api/session").status_code == 204
    assert client.get("/api/cameras").status_code == 401
    login(client, "ann")
    UserStore(store).set_password("ann", "another long password")
    assert client.get("/api/cameras").status_code == 401


# -- roles and case references -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("user", "method", "path", "status"),
    [
        ("otto", "post", "/api/search/faces", 403),  # operators never run face search
        ("otto", "get", "/api/trajectory/plate?plate=川AF058Y&case=CASE-2024-1", 403),
        ("otto", "get", "/api/search/plates?q=川AF058Y", 200),
        ("aud", "get", "/api/search/plates?q=川AF058Y", 403),  # auditors search nothing
        ("aud", "get", "/api/alerts", 403),
        ("aud", "get", "/api/audit", 200),
        ("ann", "get", "/api/audit", 403),
        ("ann", "get", "/api/users", 403),
        ("boss", "get", "/api/users", 200),
        ("otto", "get", "/api/alerts", 200),
    ],
)
def test_role_permissions(client: TestClient, store: LocalStore, user: str, method: str, path: str,
                          status: int) -> None:
    login(client, user)
    if method == "post":
        response = client.post(path, data={"case": "CASE-2024-0042"}, files={"image": ("q.jpg", solid_jpeg(RED))})
    else:
        response = client.get(path)
    assert response.status_code == status, response.text
    entry = last(store)[0]
    assert entry["user"] == user and entry["outcome"] == ("ok" if status == 200 else "refused")


@pytest.mark.parametrize("case", [None, "", "case 1", "CASE_2024", "x" * 90])
def test_face_search_without_a_valid_case_is_refused_and_audited(client: TestClient, store: LocalStore,
                                                                case: str | None, fake: FakeSearch) -> None:
    login(client, "ann")
    data = {} if case is None else {"case": case}
    response = client.post("/api/search/faces", data=data, files={"image": ("q.jpg", solid_jpeg(RED))})
    assert response.status_code in (400, 422)
    assert "case" in response.text
    entry = last(store)[0]
    assert entry["action"] == "search.faces" and entry["outcome"] in ("refused", "invalid")
    assert not [c for c in fake.calls if c[0] == "faces"]


def test_trajectory_and_export_need_a_case(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    assert client.get("/api/trajectory/plate", params={"plate": "川AF058Y"}).status_code == 400
    response = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0"})
    assert response.status_code == 400 and "case reference" in response.json()["detail"]
    assert [e["outcome"] for e in last(store, 2)] == ["refused", "refused"]


# -- face query gate ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("colour", "reason"),
    [(DARK, "quality 0.05 is below the minimum 0.30: too small"), (WHITE, "no usable face"),
     (BLUE, "shows 2 faces")],
)
def test_unusable_query_faces_are_refused_with_a_reason(client: TestClient, store: LocalStore, colour: tuple,
                                                        reason: str) -> None:
    login(client, "ann")
    response = client.post("/api/search/faces", data={"case": "CASE-2024-0042"},
                           files={"image": ("q.jpg", solid_jpeg(colour))})
    assert response.status_code == 422 and reason in response.json()["detail"]
    assert last(store)[0]["outcome"] == "refused"


def test_not_an_image_is_refused(client: TestClient) -> None:
    login(client, "ann")
    response = client.post("/api/search/faces", data={"case": "CASE-2024-0042"},
                           files={"image": ("q.jpg", b"GIF89a not really")})
    assert response.status_code == 422 and "not an image" in response.json()["detail"]


def test_face_search_ranks_and_reports_query_quality(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    response = client.post("/api/search/faces", data={"case": "CASE-2024-0042", "k": "5"},
                           files={"image": ("q.jpg", solid_jpeg(RED))})
    body = response.json()
    assert response.status_code == 200
    assert body["query"]["quality"] == pytest.approx(0.8) and body["query"]["faces_in_image"] == 1
    assert body["hits"][0]["face_id"] == "cam-a:p:0.face.1" and body["hits"][0]["score"] == pytest.approx(1.0)
    entry = last(store)[0]
    assert entry["case"] == "CASE-2024-0042" and entry["result_count"] == 2
    assert store.exists(entry["params"]["image_key"])


# -- input errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "川AF058Y", "mode": "regex"}, "mode"),
        ({"q": "川AF058Y", "limit": "0"}, "limit"),
        ({"q": "川AF058Y", "start": "yesterday"}, "start"),
        ({"q": "川AF058Y", "max_edits": "9"}, "max_edits"),
        ({}, "q"),
    ],
)
def test_bad_input_gives_422_with_field_messages(client: TestClient, store: LocalStore, params: dict,
                                                 field: str) -> None:
    login(client, "ann")
    response = client.get("/api/search/plates", params=params)
    assert response.status_code == 422
    body = response.json()
    assert any(e["field"].endswith(field) for e in body["errors"]), body
    assert all(set(e) == {"field", "message"} for e in body["errors"])  # the input is never echoed
    assert "yesterday" not in response.text
    entry = last(store)[0]
    assert entry["action"] == "search.plates" and entry["outcome"] == "invalid"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "川A!58"}, "should match pattern"),
        ({"q": "川A*58?"}, "use mode=wildcard"),
        ({"q": "川AF058Y", "start": "2026-05-01T08:00:00"}, "needs a time zone"),
        ({"q": "川AF058Y", "start": "2026-05-01T09:00:00Z", "end": "2026-05-01T08:00:00Z"}, "after start"),
    ],
)
def test_semantic_input_errors_are_explained(client: TestClient, params: dict, message: str) -> None:
    login(client, "ann")
    response = client.get("/api/search/plates", params=params)
    assert response.status_code == 422 and message in response.json()["detail"]


def test_openapi_and_ui_are_served(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert {"/api/search/plates", "/api/search/faces", "/api/trajectory/plate", "/api/exports",
            "/api/alerts/stream", "/api/cameras", "/api/audit"} <= set(spec["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/api/docs").status_code == 200
    assert client.get("/static/app.js").status_code == 200


HIT_BODIES = {"PlateHitOut": PlateHit, "VehicleHitOut": TrackHit, "FaceHitOut": FaceHit, "SightingOut": Sighting,
              "AlertOut": AlertHit, "CameraOut": CameraState}


def test_openapi_hits_carry_the_query_layers_fields(client: TestClient) -> None:
    """The response bodies are the query layer's hit models plus what a client needs: every field with its
    requiredness and description, and no unknown fields."""
    schemas = client.get("/api/openapi.json").json()["components"]["schemas"]
    for body, hit in HIT_BODIES.items():
        schema = schemas[body]
        assert schema["additionalProperties"] is False, body
        for name, field in hit.model_fields.items():
            prop = schema["properties"][name]
            assert (name in schema.get("required", [])) == field.is_required(), (body, name)
            assert prop.get("description") == field.description, (body, name)


def test_audit_endpoints_and_chain_after_a_session(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    client.get("/api/search/plates", params={"q": "川AF058Y"})
    client.get("/api/search/vehicles", params={"type": "van"})
    login(client, "aud")
    entries = client.get("/api/audit", params={"user": "ann"}).json()["entries"]
    assert [e["action"] for e in entries] == ["auth.login", "search.plates", "search.vehicles"]
    assert entries[1]["result_count"] == 3 and entries[1]["client"] == "testclient"
    assert client.get("/api/audit/verify").json()["ok"] is True
    assert verify(store).ok


def test_audit_write_failure_serves_nothing(client: TestClient, ctx: ApiContext) -> None:
    login(client, "ann")

    def broken(entry: dict) -> dict:
        msg = "store down"
        raise OSError(msg)

    ctx.audit.append = broken  # type: ignore[method-assign]
    response = client.get("/api/search/plates", params={"q": "川AF058Y"})
    assert response.status_code == 503 and "hits" not in response.text


def test_users_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUBELINE_STORE__LOCAL__ROOT", str(tmp_path / "cli-store"))
    runner = CliRunner()
    added = runner.invoke(main, ["users", "add", "ivy", "--role", "investigator", "--unit", "510104",
                                 "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "scope: units 510104" in added.output
    assert runner.invoke(main, ["users", "add", "ivy", "--role", "auditor", "--password-stdin"],
                         input=PASSWORD + "\n").exit_code == 1
    assert runner.invoke(main, ["users", "add", "weak", "--role", "auditor", "--password-stdin"],
                         input="short\n").exit_code == 1
    token = runner.invoke(main, ["users", "token", "ivy", "--label", "ci"])
    assert token.exit_code == 0 and token.output.startswith("tl_")
    listed = runner.invoke(main, ["users", "list"])
    assert "ivy" in listed.output and "investigator" in listed.output and token.output.split("_")[1] in listed.output
    assert runner.invoke(main, ["users", "rm", "ivy"]).exit_code == 0
    assert runner.invoke(main, ["users", "rm", "ivy"]).exit_code == 1
