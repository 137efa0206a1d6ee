"""Camera passwords at rest in the registry: sealed on write, opened on read, bound to the camera,
clear-text records migrated, keys rotated; the ingest worker still gets the right credentials."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.bus.memory import MemoryBus
from pipeline.cameras.registry import CameraRegistry
from pipeline.cameras.urls import with_credentials
from pipeline.config import TubelineConfig, load_config
from pipeline.config.ingest import CameraSpec, camera_to_json
from pipeline.config.secrets import SecretsConfig
from pipeline.sealing import Keyring, KeyUnavailable, SealBroken, SealedSecret, SecretUnavailable
from pipeline.store.local import LocalStore
from workers.ingest.sources.rtsp import RtspSource
from workers.ingest.worker import IngestWorker, make_source_factory

SECRET = "Zx9@gate-secret"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def keyring(key_id: str = "k1", key: bytes | None = None, **old: bytes) -> Keyring:
    return Keyring({**old, key_id: key or os.urandom(32)}, key_id)


def rtsp_cam(camera_id: str = "gate-1", password: str = SECRET) -> CameraSpec:
    return CameraSpec(id=camera_id, name="Gate", kind="rtsp", url="rtsp://10.1.2.3/ch1", username="admin",
                      password=SecretStr(password), admin_unit="510104")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert SECRET not in caplog.text and quote(SECRET, safe="") not in caplog.text


def raw(store: LocalStore, camera_id: str) -> bytes:
    return store.get(f"registry/cameras/{camera_id}.json")


def write_raw(store: LocalStore, camera_id: str, doc: dict) -> None:
    store.put(f"registry/cameras/{camera_id}.json", json.dumps(doc).encode(), content_type="application/json")


def assert_no_clear_password(data: bytes, password: str = SECRET) -> None:
    for form in (password, quote(password, safe=""), b64(password.encode())):
        assert form.encode() not in data
    assert json.loads(data)["password"].startswith("enc:v1:")


# --- sealed on write, opened on read ---------------------------------------------------------------


def test_the_stored_object_holds_no_clear_password_and_reads_back(store: LocalStore) -> None:
    registry = CameraRegistry(store, keyring=keyring())
    registry.put(rtsp_cam())
    data = raw(store, "gate-1")
    assert_no_clear_password(data)
    assert json.loads(data)["password"].startswith("enc:v1:k1:")
    assert json.loads(data)["username"] == "admin" and json.loads(data)["name"] == "Gate"  # the rest stays readable
    assert registry.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert [c.password.get_secret_value() for c in registry.list()] == [SECRET]  # type: ignore[union-attr]
    assert registry.get("gate-1") == rtsp_cam()


def test_the_ingest_worker_builds_the_source_with_the_right_credentials(store: LocalStore, tmp_path: Path) -> None:
    config = load_config(environ={"TUBELINE_SECRETS__KEY_FILE": str(tmp_path / "registry.key")})
    CameraRegistry.from_config(store, config).put(rtsp_cam())  # what `tubeline cameras add` does
    assert_no_clear_password(raw(store, "gate-1"))
    worker = IngestWorker(config, bus=MemoryBus(), store=store)
    spec = worker.wanted()["gate-1"]
    source = make_source_factory(spec, worker.ingest)(threading.Event())
    assert isinstance(source, RtspSource)
    assert with_credentials(source.url, source.username, source.password) == \
        f"rtsp://admin:{quote(SECRET, safe='')}@10.1.2.3/ch1"


# --- refused: wrong key, altered, moved -------------------------------------------------------------


def test_wrong_key_is_a_clear_error_naming_camera_and_key_id(store: LocalStore, caplog) -> None:  # noqa: ANN001
    CameraRegistry(store, keyring=keyring("k1")).put(rtsp_cam())
    other = CameraRegistry(store, keyring=keyring("k1"))  # same ID, different key
    with pytest.raises(SealBroken, match=r"camera gate-1: cannot decrypt with registry key 'k1'"):
        other.get("gate-1")
    missing = CameraRegistry(store, keyring=keyring("k9"))
    with pytest.raises(KeyUnavailable, match=r"camera gate-1: encrypted with registry key 'k1'.*has: k9"):
        missing.get("gate-1")
    caplog.clear()
    assert missing.list() == [] and missing.list() == []  # skipped, warned once (not every refresh)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "gate-1" in warnings[0] and "'k1'" in warnings[0]


def test_tampered_ciphertext_is_refused(store: LocalStore) -> None:
    registry = CameraRegistry(store, keyring=keyring())
    registry.put(rtsp_cam())
    doc = json.loads(raw(store, "gate-1"))
    head, body = doc["password"].rsplit(":", 1)
    blob = bytearray(base64.b64decode(body))
    blob[len(blob) // 2] ^= 0x20
    write_raw(store, "gate-1", {**doc, "password": f"{head}:{base64.b64encode(bytes(blob)).decode()}"})
    with pytest.raises(SealBroken, match="camera gate-1"):
        registry.get("gate-1")


def test_ciphertext_moved_to_another_camera_is_refused(store: LocalStore) -> None:
    registry = CameraRegistry(store, keyring=keyring())
    registry.put(rtsp_cam("gate-1"))
    registry.put(rtsp_cam("gate-2", password="other-one"))
    stolen = json.loads(raw(store, "gate-1"))["password"]
    write_raw(store, "gate-2", {**json.loads(raw(store, "gate-2")), "password": stolen})
    with pytest.raises(SealBroken, match="camera gate-2: .*copied from another record"):
        registry.get("gate-2")
    assert registry.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert [c.id for c in registry.list()] == ["gate-1"]


def test_a_camera_spec_refuses_a_sealed_value_as_its_password() -> None:
    with pytest.raises(ValidationError, match="encrypted registry value"):
        CameraSpec.model_validate({"id": "c", "kind": "rtsp", "url": "rtsp://h/x", "password": "enc:v1:k1:AAAA"})


# --- registries without keys (API, search) ----------------------------------------------------------


def test_a_registry_without_keys_reads_everything_but_the_password_and_writes_it_back_unchanged(
        store: LocalStore) -> None:
    keyed = CameraRegistry(store, keyring=keyring())
    keyed.put(rtsp_cam())
    sealed_before = json.loads(raw(store, "gate-1"))["password"]
    keyless = CameraRegistry(store)
    cam = keyless.get("gate-1")
    assert (cam.name, cam.admin_unit, cam.username) == ("Gate", "510104", "admin")
    assert isinstance(cam.password, SealedSecret) and str(cam.password) == "**********"
    assert camera_to_json(cam)["password"] == "**********"
    with pytest.raises(SecretUnavailable, match="camera gate-1: .*registry key 'k1'"):
        cam.password.get_secret_value()
    keyless.put(cam.model_copy(update={"name": "Gate (north)"}))
    assert json.loads(raw(store, "gate-1"))["password"] == sealed_before
    assert keyed.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
    with pytest.raises(KeyUnavailable, match="camera new: .*registry key"):
        keyless.put(rtsp_cam("new"))
    with pytest.raises(SealBroken, match="camera gate-9: .*another camera"):
        keyless.put(cam.model_copy(update={"id": "gate-9"}))
    assert not keyless.exists("new") and not keyless.exists("gate-9")


# --- migration of clear-text records --------------------------------------------------------------------


def legacy_record(store: LocalStore, camera_id: str = "gate-1", password: str = SECRET) -> None:
    """A record as the registry wrote it before encryption: the password in clear."""
    write_raw(store, camera_id, camera_to_json(rtsp_cam(camera_id, password), reveal_secrets=True))


def test_a_clear_text_record_loads_and_rekey_encrypts_it(store: LocalStore, caplog) -> None:  # noqa: ANN001
    legacy_record(store)
    assert SECRET.encode() in raw(store, "gate-1")
    registry = CameraRegistry(store, keyring=keyring())
    assert registry.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert any("clear text" in r.getMessage() and "rekey" in r.getMessage() for r in caplog.records)
    report = registry.rekey()
    assert report.sealed == ["gate-1"] and not report.failed and report.key_id == "k1"
    assert_no_clear_password(raw(store, "gate-1"))
    assert registry.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert registry.rekey().current == ["gate-1"]  # nothing left to do


def test_any_write_seals_a_clear_text_record_even_an_unchanged_gb_upsert(store: LocalStore) -> None:
    channel = "34020000001320000001"
    cam = CameraSpec(id=channel, kind="gb28181", gb_device_id="34020000001180000001", name="East",
                     password=SecretStr(SECRET))
    write_raw(store, channel, camera_to_json(cam, reveal_secrets=True))
    registry = CameraRegistry(store, keyring=keyring())
    catalog = CameraSpec(id=channel, kind="gb28181", gb_device_id="34020000001180000001", name="East")
    assert registry.upsert(catalog) is True  # nothing changed but the storage: rewritten sealed
    assert_no_clear_password(raw(store, channel))
    assert registry.get(channel).password.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert registry.upsert(catalog) is False  # now sealed with the current key: no write
    assert registry.upsert(catalog.model_copy(update={"name": "East gate"})) is True
    assert registry.get(channel).password.get_secret_value() == SECRET  # type: ignore[union-attr]  # kept


# --- rotation ----------------------------------------------------------------------------------------


def test_rotating_keeps_old_records_readable_and_rekey_moves_them(store: LocalStore) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    CameraRegistry(store, keyring=keyring("k1", k1)).put(rtsp_cam("gate-1"))
    legacy_record(store, "gate-2", "second-one")
    store.put("registry/cameras/plain.json", json.dumps(
        camera_to_json(CameraSpec(id="plain", kind="file", url="/a.mp4"))).encode())
    config = load_config(environ={"TUBELINE_SECRETS__KEY": b64(k2), "TUBELINE_SECRETS__KEY_ID": "k2",
                                  "TUBELINE_SECRETS__OLD_KEYS__K1": b64(k1)})
    rotated = CameraRegistry.from_config(store, config)
    assert rotated.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
    dry = rotated.rekey(dry_run=True)
    assert dry.moved == {"gate-1": "k1"} and dry.sealed == ["gate-2"]
    assert json.loads(raw(store, "gate-1"))["password"].startswith("enc:v1:k1:")  # dry run wrote nothing
    report = rotated.rekey()
    assert (report.key_id, report.moved, report.sealed, report.no_password, report.failed) == \
        ("k2", {"gate-1": "k1"}, ["gate-2"], ["plain"], {})
    for cid in ("gate-1", "gate-2"):
        assert json.loads(raw(store, cid))["password"].startswith("enc:v1:k2:")
    only_new = CameraRegistry(store, keyring=keyring("k2", k2))  # the old key can now be dropped
    assert {c.id: c.password.get_secret_value() for c in only_new.list() if c.password} == \
        {"gate-1": SECRET, "gate-2": "second-one"}
    with pytest.raises(KeyUnavailable, match="'k2'"):
        CameraRegistry(store, keyring=keyring("k1", k1)).get("gate-1")


def test_rekey_reports_records_it_cannot_open_and_still_does_the_rest(store: LocalStore) -> None:
    CameraRegistry(store, keyring=keyring("k1")).put(rtsp_cam("lost"))  # a key nobody has any more
    legacy_record(store, "gate-1")
    store.put("registry/cameras/broken.json", b"{not json")
    registry = CameraRegistry(store, keyring=keyring("k1"))
    report = registry.rekey()
    assert report.sealed == ["gate-1"]
    assert set(report.failed) == {"registry/cameras/lost.json", "registry/cameras/broken.json"}
    assert "camera lost" in report.failed["registry/cameras/lost.json"]
    assert_no_clear_password(raw(store, "gate-1"))
    with pytest.raises(KeyUnavailable):
        CameraRegistry(store).rekey()


def test_registry_from_default_config_generates_its_key_file_only_when_it_seals(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secrets" / "registry.key"
    config = TubelineConfig(secrets=SecretsConfig(key_file=path))
    registry = CameraRegistry.from_config(LocalStore(tmp_path / "store"), config)
    registry.put(CameraSpec(id="f", kind="file", url="/a.mp4"))
    assert registry.list() and not path.exists()  # no password, no key needed
    registry.put(rtsp_cam())
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert registry.get("gate-1").password.get_secret_value() == SECRET  # type: ignore[union-attr]
