"""The least-privilege matrix (pipeline.access): who may write what, its renderings for SeaweedFS and MinIO, and
ScopedStore refusing what a service's identity may not do. The real S3 refusals are in
tests/integration/test_store_identities.py; the flow tests run the API, the synopsis builder and the embedded
pipeline under ScopedStore, so a worker reaching outside its grant fails there."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from pipeline.access import (
    ADMIN,
    BROKER,
    DETECT_STATE,
    SERVICES,
    AccessDenied,
    ScopedStore,
    access_matrix,
    minio_policy,
    seaweed_actions,
    seaweed_identities,
)
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store.local import LocalStore
from workers.api.audit import AuditLog
from workers.api.clips import EXPORTS_PREFIX
from workers.api.sessions import MEDIA_KEY, SESSIONS_PREFIX
from workers.api.users import TOKENS_PREFIX, USERS_PREFIX
from workers.detect.state import SNAPSHOT_PREFIX
from workers.runner.registry import WORKERS

MATRIX = access_matrix(TubelineConfig())
SAMPLE_KEYS = {
    "auth": f"{USERS_PREFIX}/admin.json",
    "audit": "audit/chains/w1/000000000001.json",
    "state/detect": f"{SNAPSHOT_PREFIX}/cam-1.json",
    "state/plate": "state/plate/cam-1/cam-1:s1:7.json",
    "state/face": "state/face/cam-1/cam-1:s1:7.json",
    "state/rules": "state/rules/cam-1/tubeline.detections.v1.json",
    "recordings": "recordings/cam-1/2026-11-25/000001.mp4",
    "crops": "crops/cam-1/2026-11-25/cam-1:s1:7/3.jpg",
    "plates": "plates/cam-1/2026-11-25/cam-1:s1:7/3.jpg",
    "faces": "faces/cam-1/2026-11-25/cam-1:s1:7/3.jpg",
    "catalog": "catalog/tracks/date=2026-11-25/camera=cam-1/part-0001.parquet",
    "index": "index/faces/arcface@1/2026-11-25/shard.faiss",
    "tables": "tables/plates/date=2026-11-25/bucket=3/part-0123abcd.zstd.parquet",
    "table-log": "tables/plates/_delta_log/00000000000000000007.json",
    "synopsis": "synopsis/cam-1/0123456789abcdef0123456789abcdef.mp4",
    "registry": "registry/cameras/cam-1.json",
    "hotlists": "hotlists/stolen.json",
}


def writers(key: str) -> set[str]:
    return {name for name in SERVICES if MATRIX[name].allows("write", key)}


def readers(key: str) -> set[str]:
    return {name for name in SERVICES if MATRIX[name].allows("read", key)}


@pytest.mark.parametrize(("area", "only"), [
    ("auth", {"api"}), ("audit", {"api"}), ("state/detect", {"detect"}), ("state/plate", {"plate"}),
    ("state/face", {"face"}), ("state/rules", {"rules"}),
    ("recordings", {"ingest"}), ("crops", {"detect"}), ("plates", {"plate"}), ("faces", {"face"}),
    ("catalog", {"index"}), ("index", {"index"}), ("synopsis", {"synopsis"}), ("hotlists", {"api"}),
    ("tables", {"index"}), ("table-log", {"index"}),
])
def test_each_area_has_exactly_its_writers(area: str, only: set[str]) -> None:
    assert writers(SAMPLE_KEYS[area]) == only


def test_the_api_writes_no_state_and_deletes_no_evidence() -> None:
    api = MATRIX["api"]
    for area in ("state/detect", "state/plate", "recordings", "crops", "plates", "faces", "catalog", "index"):
        assert not api.allows("write", SAMPLE_KEYS[area]), area
    assert api.allows("write", SAMPLE_KEYS["registry"])  # admins add, edit and remove cameras in the web UI
    assert api.allows("write", "synopsis/cam-1/0123456789abcdef0123456789abcdef.status.json")  # a queued request
    assert not api.allows("write", SAMPLE_KEYS["synopsis"])  # never a synopsis video or index


def test_no_service_deletes_evidence_or_audit_entries() -> None:
    for area in ("recordings", "crops", "plates", "faces", "audit", "state/detect", "index", "synopsis"):
        assert not any(MATRIX[n].allows("delete", SAMPLE_KEYS[area]) for n in SERVICES), area
    assert {n for n in SERVICES if MATRIX[n].allows("delete", SAMPLE_KEYS["catalog"])} == {"index"}  # compaction
    assert {n for n in SERVICES if MATRIX[n].allows("delete", SAMPLE_KEYS["tables"])} == {"index"}  # vacuum
    assert {n for n in SERVICES if MATRIX[n].allows("delete", f"{SESSIONS_PREFIX}/x.json")} == {"api"}


def test_the_delta_tables_are_written_by_the_indexer_and_only_read_by_the_api() -> None:
    """index.catalog_format=delta: the indexer commits (data files, log entries) and vacuums; the API plans its
    queries from the log (a listing of ``_delta_log/``) and reads the files, and writes nothing there."""
    index, api = MATRIX["index"], MATRIX["api"]
    for key in (SAMPLE_KEYS["tables"], SAMPLE_KEYS["table-log"]):
        assert index.allows("write", key) and api.allows("read", key) and not api.allows("write", key)
        assert not api.allows("delete", key)
    assert index.allows("list", "tables/plates/_delta_log/") and api.allows("list", "tables/plates/_delta_log/")


def test_secrets_are_read_by_their_owners_only() -> None:
    assert readers(SAMPLE_KEYS["auth"]) == readers(MEDIA_KEY) == {"api"}  # password hashes, the media-link key
    assert readers(SAMPLE_KEYS["registry"]) == {"api", "ingest"}  # encrypted camera passwords
    assert readers(SAMPLE_KEYS["state/detect"]) == {"detect"}


def test_the_matrix_names_the_prefixes_the_code_uses() -> None:
    for key in (f"{USERS_PREFIX}/a.json", f"{TOKENS_PREFIX}/t.json", f"{SESSIONS_PREFIX}/s.json", MEDIA_KEY,
                f"{EXPORTS_PREFIX}/e.mp4", f"{AuditLog(LocalStore(Path('/nonexistent'))).prefix}/heads/w.json"):
        assert writers(key) == {"api"}, key
    assert SNAPSHOT_PREFIX == DETECT_STATE
    assert set(SERVICES) == set(WORKERS)  # one identity per worker kind, no more


def test_the_grants_follow_configured_prefixes() -> None:
    config = with_overrides(TubelineConfig(), {"ingest.recordings.prefix": "video", "index.catalog_prefix": "cat"})
    matrix = access_matrix(config)
    assert matrix["ingest"].allows("write", "video/cam-1/x.mp4") and not matrix["ingest"].allows("write", "rec/x")
    assert matrix["index"].allows("write", "cat/x.parquet") and matrix["api"].allows("list", "cat/")


def test_scoped_store_refuses_what_the_identity_may_not_do(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(SAMPLE_KEYS["recordings"], b"segment")
    api = ScopedStore(store, MATRIX["api"])
    assert api.get(SAMPLE_KEYS["recordings"]) == b"segment"
    with pytest.raises(AccessDenied):
        api.delete(SAMPLE_KEYS["recordings"])
    with pytest.raises(AccessDenied):
        api.put(SAMPLE_KEYS["state/detect"], b"{}")
    with pytest.raises(AccessDenied):
        api.list("state/")
    ingest = ScopedStore(store, MATRIX["ingest"])
    with pytest.raises(AccessDenied):
        ingest.put(SAMPLE_KEYS["auth"], b"{}")
    assert store.exists(SAMPLE_KEYS["recordings"]) and not store.exists(SAMPLE_KEYS["auth"])
    with pytest.raises(AccessDenied):
        ScopedStore(store, MATRIX["detect"]).list("")  # no service lists the whole bucket


def test_seaweed_actions_are_prefix_scoped() -> None:
    actions = seaweed_actions(MATRIX["api"], "tubeline")
    assert "Read:tubelin?" in actions  # HeadBucket on the bucket itself, no object
    assert all(a.split(":", 1)[1].startswith("tubeline/") for a in actions if a != "Read:tubelin?")
    assert all("*" in a for a in actions if a != "Read:tubelin?")  # no bare Read:bucket (= every object)
    target = "Write:tubeline/" + SAMPLE_KEYS["state/detect"]
    assert not any(fnmatch.fnmatchcase(target, a) for a in actions)
    assert any(fnmatch.fnmatchcase("Write:tubeline/" + SAMPLE_KEYS["auth"], a) for a in actions)


def test_identities_document_keeps_admin_and_broker_apart() -> None:
    creds = {n: {"access_key": f"ak-{n}", "secret_key": f"sk-{n}"} for n in (ADMIN, BROKER, *SERVICES)}
    doc = seaweed_identities(creds, MATRIX, "tubeline", "tubeline-kafka")
    by_name = {i["name"]: i["actions"] for i in doc["identities"]}
    assert set(by_name) == {ADMIN, BROKER, *SERVICES}
    assert "Admin" in by_name[ADMIN] and not any("Admin" in a for n in SERVICES for a in by_name[n])
    assert all(a.endswith(":tubeline-kafka") for a in by_name[BROKER])
    assert not any("tubeline-kafka" in a for n in SERVICES for a in by_name[n])


def test_minio_policies_scope_objects_by_prefix() -> None:
    policy = minio_policy(MATRIX["detect"], "tubeline")
    write = next(s for s in policy["Statement"] if s["Sid"] == "Write")
    assert write["Resource"] == ["arn:aws:s3:::tubeline/crops/*", "arn:aws:s3:::tubeline/state/detect/*"]
    assert "s3:DeleteObject" not in write["Action"] and "Delete" not in {s["Sid"] for s in policy["Statement"]}
    api = minio_policy(MATRIX["api"], "tubeline")
    assert next(s for s in api["Statement"] if s["Sid"] == "Delete")["Resource"] == [
        "arn:aws:s3:::tubeline/auth/*", "arn:aws:s3:::tubeline/hotlists/*",
        "arn:aws:s3:::tubeline/registry/cameras/*"]  # audit/ is put-only
    assert all(r.startswith("arn:aws:s3:::tubeline/") for s in policy["Statement"] if s["Sid"] != "BucketCheckAndListing"
               for r in s["Resource"])
    rules = minio_policy(MATRIX["rules"], "tubeline")  # the rules document and its own engine state, nothing else
    assert [s["Sid"] for s in rules["Statement"]] == ["BucketCheckAndListing", "Read", "Write"]
    assert rules["Statement"][1]["Resource"] == [
        "arn:aws:s3:::tubeline/config/rules.json", "arn:aws:s3:::tubeline/state/rules/*"]
    assert next(s for s in rules["Statement"] if s["Sid"] == "Write")["Resource"] == [
        "arn:aws:s3:::tubeline/state/rules/*"]


def test_kafka_grants_match_what_each_worker_consumes() -> None:
    from pipeline.access import KAFKA_GRANTS, kafka_acl_commands
    from workers.runner.registry import worker_class

    assert set(KAFKA_GRANTS) == set(SERVICES)
    for name in SERVICES:
        cls = worker_class(name)
        topics, group = tuple(getattr(cls, "topics", ())), getattr(cls, "group", "")
        if topics:  # a consumer worker: its inputs, its group, its dead letters
            assert KAFKA_GRANTS[name].read == topics and KAFKA_GRANTS[name].groups == (group,), name
            assert KAFKA_GRANTS[name].dead_letters == tuple(f"{t}.dlq" for t in topics)
    commands = list(kafka_acl_commands(topic_prefix="site1"))
    assert "User:tubeline-ingest --operation Write --operation Describe --topic site1.tubeline.frames.v1" in (
        " ".join(commands))
    assert not any("User:tubeline-api" in c and "Write" in c for c in commands)  # the API only tails alerts


def test_the_stack_keeps_an_old_admin_key_and_adds_one_identity_per_service(tmp_path: Path) -> None:
    import json

    from pipeline.config.stack import StackConfig
    from pipeline.stack import LocalStack

    stack = LocalStack(StackConfig(state_dir=tmp_path))
    stack.state.mkdir(parents=True, exist_ok=True)
    stack.credentials_file.write_text(json.dumps({"access_key": "old-admin", "secret_key": "old-secret"}))
    assert stack.credentials(ADMIN) == {"access_key": "old-admin", "secret_key": "old-secret"}  # still works
    keys = {name: stack.credentials(name)["access_key"] for name in (ADMIN, BROKER, *SERVICES)}
    assert len(set(keys.values())) == len(keys)
    assert oct(stack.credentials_file.stat().st_mode & 0o777) == "0o600"
    assert stack.write_identities() and not stack.write_identities()  # written once, then unchanged
    doc = json.loads(stack.identities_file.read_text())
    assert {i["name"] for i in doc["identities"]} == set(keys)
    api = next(i for i in doc["identities"] if i["name"] == "api")
    assert api["credentials"] == [{"accessKey": keys["api"], "secretKey": stack.credentials("api")["secret_key"]}]
    assert stack.env("detect")["TUBELINE_STORE__S3__ACCESS_KEY"] == keys["detect"]
    with pytest.raises(Exception, match="broker"):
        stack.env(BROKER)
