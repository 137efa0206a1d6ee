"""The case register and workspace over the API (fake search service, real store, real clip cutting).

Member vs non-member vs closed case for face search, trajectories and exports (a closed case also ends the
download of its exports); opening, members, closing and reopening; saving hits, clips and notes, the timeline,
search inside and across cases; links suggested between cases sharing a plate, confirmed, and the linked
case's items shown to members of both. Every call's audit entry is checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.api import ApiConfig
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import (
    T0,
    TEST_CASE,
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

RED = (0, 0, 230)
OTHER = "CASE-2024-0077"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder with cameras, users and 20 s of H.264 recording of cam-a (copied per test)."""
    root = tmp_path_factory.mktemp("cases") / "store"
    s = LocalStore(root)
    register_cameras(s)
    add_users(s)
    write_recording(s, "cam-a", T0 - timedelta(seconds=5), 20)
    return root


@pytest.fixture
def store(recorded: Path, tmp_path: Path) -> LocalStore:
    import shutil

    shutil.copytree(recorded, tmp_path / "store")
    return LocalStore(tmp_path / "store")


@pytest.fixture
def fake() -> FakeSearch:
    return sample_search()


@pytest.fixture
def ctx(store: LocalStore, fake: FakeSearch, tmp_path: Path) -> ApiContext:
    config = with_overrides(TubelineConfig(), {"cases.evidence_key_file": str(tmp_path / "evidence.key")})
    api_store = ScopedStore(store, access_matrix(config)["api"])
    return build_context(config, store=api_store, search=fake, face_analyzer_factory=FakeAnalyzer,
                         audit_writer="test", api=ApiConfig(cache_dir=str(tmp_path / "cache")))


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, start_background=False)) as c:
        yield c


def face_search(client: TestClient, case: str) -> int:
    return client.post("/api/search/faces", data={"case": case},
                       files={"image": ("q.jpg", solid_jpeg(RED))}).status_code


def new_case(client: TestClient, number: str = OTHER, members: list[dict] | None = None) -> dict:
    body = {"number": number, "title": "Burglary ring", "case_type": "criminal", "unit": "510104",
            "legal_basis": "Criminal Procedure Law art. 52", "purpose": "identify the van's driver",
            "members": members or []}
    response = client.post("/api/cases", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_member_non_member_and_closed_case_for_face_search_trajectory_and_export(
        client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    case = new_case(client, members=[{"user": "ivy", "role": "viewer"}])
    assert case["my_role"] == "lead" and case["status"] == "open"
    assert face_search(client, OTHER) == 200  # member (lead) of an open case
    export = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": OTHER})
    assert export.status_code == 200, export.text
    url = export.json()["url"]
    assert client.get(url).status_code == 200

    login(client, "otto")  # an operator may not run face search at all
    assert face_search(client, OTHER) == 403
    login(client, "ivy")  # a viewer member: reads the case, no sensitive search
    assert face_search(client, OTHER) == 403
    assert "viewer" in tail(store, 1)[0]["reason"]
    login(client, "boss")  # an admin who is not a member
    assert face_search(client, OTHER) == 403
    assert client.get("/api/trajectory/plate", params={"plate": "川AF058Y", "case": OTHER}).status_code == 403
    assert client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0",
                                             "case": OTHER}).status_code == 403
    entry = tail(store, 1)[0]
    assert entry["outcome"] == "refused" and entry["case"] == OTHER and "not a member" in entry["reason"]
    assert face_search(client, "CASE-2099-0001") == 403  # no such case: the same refusal

    login(client, "ann")
    closed = client.post(f"/api/cases/{OTHER}/close", json={"reason": "suspect charged"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert face_search(client, OTHER) == 403
    assert "closed" in tail(store, 1)[0]["reason"]
    assert client.get(url).status_code == 403  # the case's exports end with it
    assert client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0",
                                             "case": OTHER}).status_code == 403
    assert client.post(f"/api/cases/{OTHER}/reopen", json={"reason": "appeal"}).json()["status"] == "open"
    assert face_search(client, OTHER) == 200
    actions = [e["action"] for e in tail(store, 30)]
    assert {"cases.open", "cases.close", "cases.reopen", "search.faces", "export.clip"} <= set(actions)


def test_cases_are_invisible_to_non_members_and_managed_by_leads(client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    new_case(client, members=[{"user": "ivy", "role": "investigator"}])
    assert client.post("/api/cases", json={"number": OTHER, "title": "x", "case_type": "criminal", "unit": "510104",
                                           "legal_basis": "x", "purpose": "x"}).status_code == 409
    bad = client.post("/api/cases", json={"number": "lower-case", "title": "x", "case_type": "criminal",
                                          "unit": "510104", "legal_basis": "x", "purpose": "x"})
    assert bad.status_code == 422
    login(client, "nemo")
    assert client.get(f"/api/cases/{OTHER}").status_code == 404
    assert OTHER not in [c["number"] for c in client.get("/api/cases").json()["cases"]]
    login(client, "ivy")
    assert client.get(f"/api/cases/{OTHER}").json()["my_role"] == "investigator"
    assert client.post(f"/api/cases/{OTHER}/members", json={"user": "nemo", "role": "viewer"}).status_code == 403
    login(client, "ann")
    added = client.post(f"/api/cases/{OTHER}/members", json={"user": "nemo", "role": "investigator"}).json()
    assert {m["user"] for m in added["members"]} == {"ann", "ivy", "nemo"}
    assert client.post(f"/api/cases/{OTHER}/members", json={"user": "ann", "role": None}).status_code == 409
    removed = client.post(f"/api/cases/{OTHER}/members", json={"user": "ivy", "role": None}).json()
    assert "ivy" not in {m["user"] for m in removed["members"]}
    assert [h["what"] for h in removed["history"]][-2:] == ["member nemo as investigator", "member ivy removed"]
    login(client, "aud")
    assert client.get("/api/cases").status_code == 403  # auditors read the audit log, not cases


def test_workspace_saves_hits_clips_and_notes_into_a_timeline_and_searches_them(
        client: TestClient, store: LocalStore) -> None:
    login(client, "ann")
    new_case(client)
    base = f"/api/cases/{OTHER}/items"
    plate = client.post(base, json={"kind": "plate", "ref": "cam-b:s:1.plate.0", "note": "second checkpoint"})
    assert plate.status_code == 200, plate.text
    saved = plate.json()
    assert saved["camera_id"] == "cam-b" and saved["text"] == "川AF058Y" and saved["crop_url"].startswith("/api/media/")
    writer, seq = saved["audit_id"].split(":")
    entry = next(e for e in tail(store, 5) if e["seq"] == int(seq))
    assert entry["action"] == "cases.save" and entry["writer"] == writer and entry["case"] == OTHER
    assert client.post(base, json={"kind": "face", "ref": "cam-a:p:0.face.1"}).status_code == 200
    assert client.post(base, json={"kind": "alert", "ref": "alert-1", "time": "2026-05-01T08:00:01Z"}).status_code == 200
    export = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": OTHER}).json()
    clip = client.post(base, json={"kind": "clip", "ref": export["export_id"]}).json()
    assert clip["sha256"] == export["sha256"] and clip["end"] > clip["time"]
    assert client.post(base, json={"kind": "note", "note": "van seen near the warehouse"}).status_code == 200
    assert client.post(base, json={"kind": "plate", "ref": "nope:0.plate.0"}).status_code == 404
    assert client.post(base, json={"kind": "clip", "ref": "20260501T080000-0123456789ab"}).status_code == 404

    items = client.get(base).json()["items"]
    kinds = [i["kind"] for i in items]
    assert kinds[-1] == "note" and sorted(kinds) == ["alert", "clip", "face", "note", "plate"]
    times = [i["time"] for i in items if i["time"]]
    assert times == sorted(times)  # a timeline
    assert [i["kind"] for i in client.get(base, params={"q": "warehouse"}).json()["items"]] == ["note"]
    across = client.get("/api/cases/search", params={"q": "川AF058Y"}).json()
    assert [(i["case"], i["kind"]) for i in across["items"]] == [(OTHER, "plate")]
    removed = client.delete(f"{base}/{saved['item_id']}")
    assert removed.status_code == 200
    assert "plate" not in [i["kind"] for i in client.get(base).json()["items"]]
    login(client, "ivy")  # not a member of OTHER: its items are not searchable by her
    assert client.get("/api/cases/search", params={"q": "warehouse"}).json()["count"] == 0
    assert client.post(base, json={"kind": "note", "note": "x"}).status_code == 404


def test_a_link_is_suggested_between_two_cases_sharing_a_plate_and_confirmed(
        client: TestClient, store: LocalStore, fake: FakeSearch) -> None:
    login(client, "ann")
    new_case(client, members=[{"user": "ivy", "role": "investigator"}])
    third = "CASE-2024-0099"
    new_case(client, third)
    client.post(f"/api/cases/{TEST_CASE}/items", json={"kind": "plate", "ref": "cam-a:s:0.plate.0"})
    client.post(f"/api/cases/{OTHER}/items", json={"kind": "plate", "ref": "cam-c:s:2.plate.0"})  # same plate
    client.post(f"/api/cases/{third}/items", json={"kind": "plate", "ref": "cam-a:s:9.plate.0"})  # 川AF058X
    links = client.get(f"/api/cases/{OTHER}/links").json()["links"]
    assert [(lk["case"], [r["kind"] for r in lk["reasons"]], lk["decision"]) for lk in links] == [
        (TEST_CASE, ["plate"], "suggested")]
    assert links[0]["reasons"][0]["value"] == "川AF058Y"

    login(client, "ivy")  # a member of both cases sees nothing of the other case's items before confirming
    assert all(i.get("linked_from") is None for i in client.get(f"/api/cases/{OTHER}/items").json()["items"])
    confirmed = client.post(f"/api/cases/{OTHER}/links/{TEST_CASE}", json={"decision": "confirm", "note": "same van"})
    assert confirmed.status_code == 200 and confirmed.json()["decision"] == "confirmed"
    linked = [i for i in client.get(f"/api/cases/{OTHER}/items").json()["items"] if i["linked_from"]]
    assert [(i["linked_from"], i["camera_id"]) for i in linked] == [(TEST_CASE, "cam-a")]
    login(client, "nemo")  # member of TEST_CASE only: OTHER's items stay out of reach
    assert client.get(f"/api/cases/{OTHER}/items").status_code == 404
    login(client, "ivy")
    assert client.post(f"/api/cases/{OTHER}/links/{third}", json={"decision": "confirm"}).status_code == 404
    decisions = [e for e in tail(store, 20) if e["action"] == "cases.link"]
    assert decisions[-1]["params"]["decision"] == "confirm"


def test_an_evidence_package_of_saved_items_verifies_and_any_changed_byte_fails(
        client: TestClient, store: LocalStore, tmp_path: Path) -> None:
    import zipfile

    from pipeline.cases.package import verify_package
    from pipeline.cases.signing import EvidenceKeys

    login(client, "ann")
    new_case(client)
    base = f"/api/cases/{OTHER}/items"
    plate = client.post(base, json={"kind": "plate", "ref": "cam-a:s:0.plate.0", "note": "entering"}).json()
    export = client.post("/api/exports", json={"kind": "plate", "id": "cam-a:s:0.plate.0", "case": OTHER}).json()
    client.post(base, json={"kind": "clip", "ref": export["export_id"]})
    client.post(base, json={"kind": "note", "note": "owner interviewed"})
    built = client.post(f"/api/cases/{OTHER}/packages", json={"reason": "for the prosecutor"})
    assert built.status_code == 200, built.text
    pkg = built.json()
    assert pkg["skipped"] == [] and pkg["files"] >= 5 and len(pkg["audit_entries"]) == 4
    data = client.get(pkg["url"]).content
    path = tmp_path / "package.zip"
    path.write_bytes(data)
    keys = EvidenceKeys(tmp_path / "evidence.key", create=False).public_keys()
    report = verify_package(path, keys)
    assert report.ok, report.problems
    manifest = report.manifest
    clips = [f for f in manifest["files"] if f["kind"] == "clip"]
    assert [c["remuxed"] for c in clips] == [True, True] and clips[0]["camera_id"] == "cam-a"
    assert clips[0]["start_local"].endswith("+08:00") and clips[0]["start_utc"].endswith("+00:00")
    assert manifest["requested_by"]["user"] == "ann" and manifest["reason"] == "for the prosecutor"
    assert plate["audit_id"] in manifest["audit_entries"]
    assert {f["path"].split("/")[0] for f in manifest["files"]} >= {"clips", "stills", "report.html"}
    assert "owner interviewed" in zipfile.ZipFile(path).read("report.html").decode()
    with zipfile.ZipFile(path) as zf:  # one flipped byte inside each member (files, manifest, signature)
        offsets = [(i.filename, i.header_offset + 30 + len(i.filename) + i.file_size // 2) for i in zf.infolist()]
    for name, offset in offsets:
        changed = bytearray(data)
        changed[offset] ^= 0x20
        path.write_bytes(bytes(changed))
        assert not verify_package(path, keys).ok, name
    actions = [e["action"] for e in tail(store, 6)]
    assert actions[-3:] == ["evidence.request", "evidence.build", "evidence.download"]


def test_an_enhanced_frame_is_a_new_item_beside_its_original_and_goes_into_the_package(
        client: TestClient, store: LocalStore) -> None:
    import io
    import zipfile

    login(client, "ann")
    new_case(client)
    plate = client.post(f"/api/cases/{OTHER}/items", json={"kind": "plate", "ref": "cam-a:s:0.plate.0"}).json()
    body = {"item_id": plate["item_id"], "region": [80, 90, 200, 150],
            "operations": [{"op": "contrast", "params": {"clip": 3}}, {"op": "superres"}]}
    made = client.post(f"/api/cases/{OTHER}/frames", json=body)
    assert made.status_code == 200, made.text
    frame = made.json()
    assert frame["kind"] == "frame" and frame["ref"] == plate["item_id"] and len(frame["media_urls"]) == 2
    ops = frame["details"]["operations"]
    assert [o["op"] for o in ops] == ["contrast", "superres"] and ops[1]["model"] == "span-x4@1"
    assert ops[1]["input"] == "120x60" and ops[1]["output"] == "480x240"
    original, enhanced = (client.get(u) for u in frame["media_urls"])
    assert original.status_code == enhanced.status_code == 200 and len(enhanced.content) > len(original.content)
    bad = client.post(f"/api/cases/{OTHER}/frames", json={**body, "operations": [{"op": "sharpen",
                                                                                    "params": {"amount": 99}}]})
    assert bad.status_code == 422
    built = client.post(f"/api/cases/{OTHER}/packages", json={"reason": "court", "items": [frame["item_id"]]}).json()
    zf = zipfile.ZipFile(io.BytesIO(client.get(built["url"]).content))
    manifest = __import__("json").loads(zf.read("manifest.json"))
    marked = [f for f in manifest["files"] if f.get("enhanced")]
    assert len(marked) == 1 and marked[0]["path"].startswith("enhanced/") and marked[0]["original"].startswith("stills/")
    assert [o["op"] for o in marked[0]["operations"]] == ["contrast", "superres"]
    assert "ENHANCED copy" in zf.read("report.html").decode()


def test_faces_above_the_threshold_and_look_alike_plates_suggest_links() -> None:
    from datetime import UTC, datetime

    import numpy as np

    from pipeline.cases.links import match_items
    from pipeline.cases.workspace import CaseItem
    from pipeline.lookalikes import LookAlikes

    def item(n: int, kind: str, ref: str = "", text: str = "", track: str = "") -> CaseItem:
        return CaseItem(item_id=f"20260501T080000-0000000{n}", case="X", kind=kind, ref=ref, text=text, track_id=track,
                        added_by="ann", added_at=datetime.now(UTC))

    same, other = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    a = [item(1, "face", "f1"), item(2, "plate", text="川A0B8Q1")]
    b = [item(3, "face", "f2"), item(4, "face", "f3"), item(5, "plate", text="川AOB8O1", track="t9")]
    vectors = {"f1": same, "f2": same * 1.0, "f3": other}
    reasons = match_items(a, b, lookalikes=LookAlikes(), embeddings=vectors, face_threshold=0.9)
    assert sorted((r.kind, r.a_item[-1], r.b_item[-1]) for r in reasons) == [("face", "1", "3"),
                                                                          ("plate-lookalike", "2", "5")]
    assert match_items(a, b, lookalikes=None, embeddings=vectors, face_threshold=None) == []
