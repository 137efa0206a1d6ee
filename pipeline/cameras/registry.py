"""The camera registry: one JSON object per camera in the object store (``registry/cameras/{id}.json``).

Works on every :class:`~pipeline.store.base.ObjectStore` backend. Records are
:class:`~pipeline.config.ingest.CameraSpec` documents whose password is sealed at rest with
AES-256-GCM (:mod:`pipeline.sealing`): the stored value is ``enc:v1:<key id>:<base64>``, bound to
the camera ID, so a value copied to another camera's record does not open. Import helpers read CSV
and YAML and move credentials embedded in RTSP URLs into the credential fields.

A registry opened with a :class:`~pipeline.sealing.Keyring` (the ingest worker, ``tubeline
cameras``) seals on write and opens on read. One opened without (the API and search, which only
need names and places) reads every other field and keeps each password as a
:class:`~pipeline.sealing.SealedSecret`: masked, written back unchanged, unreadable.

Migration: records written before sealing hold the password in clear; they still load, are sealed
on their next write, and :meth:`CameraRegistry.rekey` (``tubeline cameras rekey``) seals them all
and moves records of retired keys to the current one. Passwords are never logged or printed, and
no error message holds one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import SecretStr, ValidationError

from pipeline.cameras.urls import split_credentials
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec
from pipeline.sealing import Keyring, KeyUnavailable, SealBroken, SealedSecret, SealingError, is_sealed
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

_CSV_LIST_FIELDS = {"tags"}
_CSV_BOOL_FIELDS = {"loop", "realtime", "enabled", "record"}
_CSV_FLOAT_FIELDS = {"latitude", "longitude", "analysis_fps"}

Storage = Literal["none", "clear", "sealed"]


class CameraNotFound(KeyError):
    """No camera with that ID in the registry."""


def password_context(camera_id: str) -> str:
    """What a camera's sealed password is bound to (the envelope's associated data)."""
    return f"camera/{camera_id}/password"


@dataclass
class RekeyReport:
    """What :meth:`CameraRegistry.rekey` did, by camera ID (never a secret)."""

    key_id: str
    sealed: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)
    current: list[str] = field(default_factory=list)
    no_password: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Loaded:
    camera: CameraSpec
    storage: Storage
    key_id: str | None


class CameraRegistry:
    """CRUD over camera records in an object store; passwords sealed with ``keyring`` (see the module docstring)."""

    def __init__(self, store: ObjectStore, prefix: str = "registry/cameras", *, keyring: Keyring | None = None) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.keyring = keyring
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def from_config(cls, store: ObjectStore, config: TubelineConfig, *, keys: bool = True) -> CameraRegistry:
        """The registry of a configuration tree: its ``cameras.registry_prefix`` and, with ``keys``, its
        ``secrets`` keys (without them passwords stay sealed: enough for whatever never reads them)."""
        keyring = config.secrets.keyring() if keys else None
        return cls(store, config.cameras.registry_prefix, keyring=keyring)

    def key(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}.json"

    # -- writing ----------------------------------------------------------------------------------
    def put(self, camera: CameraSpec) -> None:
        """Store ``camera`` with its password sealed under the current key (raises SealingError without one)."""
        data = camera.model_dump(mode="json")
        data["password"] = self._sealed_password(camera)
        raw = json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8")
        self.store.put(self.key(camera.id), raw, content_type="application/json")

    def _sealed_password(self, camera: CameraSpec) -> str | None:
        password = camera.password
        what = f"camera {camera.id}"
        if password is None:
            return None
        if isinstance(password, SealedSecret):  # read without keys: written back as it was
            if password.context != password_context(camera.id):
                msg = f"{what}: its sealed password belongs to another camera record"
                raise SealBroken(msg)
            return password.envelope
        if self.keyring is None:
            msg = f"{what}: a password can only be stored with the registry key, and this registry has none"
            raise KeyUnavailable(msg)
        return self.keyring.seal(password.get_secret_value(), password_context(camera.id), what=what)

    # -- reading ----------------------------------------------------------------------------------
    def _load(self, raw: bytes) -> _Loaded:
        data = json.loads(raw)
        if not isinstance(data, dict):
            msg = "a camera record must be a JSON object"
            raise ValueError(msg)
        stored = data.get("password")
        if not is_sealed(stored):
            camera = CameraSpec.model_validate(data)
            storage: Storage = "none" if camera.password is None else "clear"
            if storage == "clear":
                self._warn_once(camera.id, "clear", "camera %s: password stored in clear text (a record from before "
                                "encryption); 'tubeline cameras rekey' encrypts it", camera.id)
            return _Loaded(camera, storage, None)
        camera = CameraSpec.model_validate({**data, "password": None})
        what = f"camera {camera.id}"
        context = password_context(camera.id)
        if self.keyring is None:
            sealed = SealedSecret(stored, context=context, what=what)
            return _Loaded(camera.model_copy(update={"password": sealed}), "sealed", sealed.key_id)
        plain = self.keyring.open(stored, context, what=what)
        key_id = self.keyring.key_id_of(stored, what=what)
        return _Loaded(camera.model_copy(update={"password": SecretStr(plain)}), "sealed", key_id)

    def _get(self, camera_id: str) -> _Loaded:
        try:
            raw = self.store.get(self.key(camera_id))
        except ObjectNotFound:
            msg = f"no camera {camera_id!r} in the registry"
            raise CameraNotFound(msg) from None
        return self._load(raw)

    def get(self, camera_id: str) -> CameraSpec:
        """The camera, password opened; raises CameraNotFound, or SealingError naming the camera and key ID."""
        return self._get(camera_id).camera

    def exists(self, camera_id: str) -> bool:
        return self.store.exists(self.key(camera_id))

    def delete(self, camera_id: str) -> bool:
        if not self.exists(camera_id):
            return False
        self.store.delete(self.key(camera_id))
        return True

    def _record_keys(self) -> list[str]:
        return sorted(info.key for info in self.store.list(self.prefix + "/") if info.key.endswith(".json"))

    def list(self) -> list[CameraSpec]:
        """Every valid record, by ID. Invalid records and those whose password does not open are skipped
        with a warning (the reason and key ID, never content)."""
        cameras = []
        for key in self._record_keys():
            try:
                cameras.append(self._load(self.store.get(key)).camera)
            except SealingError as exc:
                self._warn_once(key, str(exc), "skipping camera record %s: %s", key, exc)
            except (ValidationError, ValueError, ObjectNotFound) as exc:
                log.warning("skipping invalid camera record %s: %d problem(s)", key, _count_errors(exc))
        return sorted(cameras, key=lambda c: c.id)

    def _warn_once(self, camera: str, reason: str, message: str, *args: Any) -> None:
        if (camera, reason) not in self._warned:
            self._warned.add((camera, reason))
            log.warning(message, *args)

    # -- updating ---------------------------------------------------------------------------------
    def upsert(self, camera: CameraSpec, *, keep_local_fields: bool = True) -> bool:
        """Add or update; with ``keep_local_fields`` an existing record keeps its enabled flag,
        credentials and operator-set fields (used by GB catalogs). True when something was written;
        a record with a clear-text password or one sealed with an older key is rewritten sealed."""
        try:
            loaded = self._get(camera.id)
        except CameraNotFound:
            self.put(camera)
            return True
        old = loaded.camera
        if keep_local_fields:
            camera = camera.model_copy(
                update={
                    "enabled": old.enabled,
                    "username": old.username,
                    "password": old.password,
                    "point_class": old.point_class or camera.point_class,
                    "tags": old.tags or camera.tags,
                    "analysis_fps": old.analysis_fps,
                    "record": old.record,
                    "transport": old.transport,
                }
            )
        if camera == old and not self._needs_reseal(loaded):
            return False
        self.put(camera)
        return True

    def _needs_reseal(self, loaded: _Loaded) -> bool:
        if loaded.storage == "clear":
            return self.keyring is not None
        if loaded.storage != "sealed" or self.keyring is None:
            return False
        return loaded.key_id != self.keyring.current_id

    def rekey(self, *, dry_run: bool = False) -> RekeyReport:
        """Seal every password under the current key: clear-text records are encrypted, records of older
        keys re-encrypted; records already on the current key are checked to open. One failure does not
        stop the others; see :class:`RekeyReport`."""
        if self.keyring is None:
            msg = "rekey needs the registry key; this registry was opened without one"
            raise KeyUnavailable(msg)
        report = RekeyReport(key_id=self.keyring.ensure_current())
        for key in self._record_keys():
            try:
                loaded = self._load(self.store.get(key))
            except (SealingError, ValidationError, ValueError, ObjectNotFound) as exc:
                report.failed[key] = str(exc) if isinstance(exc, SealingError) else (
                    f"invalid record: {_count_errors(exc)} problem(s)")
                continue
            cid = loaded.camera.id
            if loaded.storage == "none":
                report.no_password.append(cid)
                continue
            if loaded.storage == "sealed" and loaded.key_id == report.key_id:
                report.current.append(cid)
                continue
            if loaded.storage == "clear":
                report.sealed.append(cid)
            else:
                report.moved[cid] = loaded.key_id or "?"
            if not dry_run:
                self.put(loaded.camera)
        return report


def _count_errors(exc: Exception) -> int:
    return len(exc.errors()) if isinstance(exc, ValidationError) else 1


def normalise_record(raw: dict[str, Any]) -> dict[str, Any]:
    """Clean one imported row: drop empty cells, parse CSV scalars, move URL credentials out of the URL."""
    data: dict[str, Any] = {}
    for name, value in raw.items():
        if name is None:
            continue
        name = name.strip()
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
            if name in _CSV_LIST_FIELDS:
                value = [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
            elif name in _CSV_BOOL_FIELDS:
                value = value.lower() in ("1", "true", "yes", "y", "on")
            elif name in _CSV_FLOAT_FIELDS:
                value = float(value)
        if value is None:
            continue
        data[name] = value
    url = data.get("url")
    if isinstance(url, str) and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        clean, user, password = split_credentials(url)
        data["url"] = clean
        data.setdefault("username", user)
        if password is not None and "password" not in data:
            data["password"] = SecretStr(password)
    return data


def parse_import(text: str, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV (header line with field names) or YAML (a list, or ``{cameras: [...]}``) document."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        for number, row in enumerate(reader, start=2):
            yield number, normalise_record(row)
        return
    doc = yaml.safe_load(text) or []
    if isinstance(doc, dict):
        doc = doc.get("cameras", [])
    if not isinstance(doc, list):
        msg = "a YAML import must be a list of cameras or a mapping with a 'cameras' list"
        raise ValueError(msg)
    for number, row in enumerate(doc, start=1):
        if not isinstance(row, dict):
            msg = f"entry {number} is not a mapping"
            raise ValueError(msg)
        yield number, normalise_record(row)


def validate_records(rows: Iterable[tuple[int, dict[str, Any]]]) -> tuple[list[CameraSpec], list[str]]:
    """Validated cameras and a list of problems (``row N: field: message``, never a secret's value)."""
    cameras: list[CameraSpec] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, data in rows:
        try:
            cam = CameraSpec.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(p) for p in err["loc"]) or "(record)"
                problems.append(f"row {number}: {where}: {err['msg']}")
            continue
        if cam.id in seen:
            problems.append(f"row {number}: duplicate camera id {cam.id}")
            continue
        seen.add(cam.id)
        cameras.append(cam)
    return cameras, problems
