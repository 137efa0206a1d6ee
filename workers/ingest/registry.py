"""The camera registry: one JSON object per camera in the object store (``registry/cameras/{id}.json``).

Works on every :class:`~pipeline.store.base.ObjectStore` backend. Records are
:class:`~pipeline.config.ingest.CameraSpec` documents; the password is stored (the store's access
control protects it) but never logged or printed. Import helpers read CSV and YAML and move
credentials embedded in RTSP URLs into the credential fields.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from pipeline.config.ingest import CameraSpec, camera_to_json
from pipeline.store.base import ObjectNotFound, ObjectStore
from workers.ingest.sources.rtsp import split_credentials

log = logging.getLogger(__name__)

_CSV_LIST_FIELDS = {"tags"}
_CSV_BOOL_FIELDS = {"loop", "realtime", "enabled", "record"}
_CSV_FLOAT_FIELDS = {"latitude", "longitude", "analysis_fps"}


class CameraNotFound(KeyError):
    """No camera with that ID in the registry."""


class CameraRegistry:
    """CRUD over camera records in an object store."""

    def __init__(self, store: ObjectStore, prefix: str = "registry/cameras") -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}.json"

    def put(self, camera: CameraSpec) -> None:
        data = json.dumps(camera_to_json(camera, reveal_secrets=True), indent=1, ensure_ascii=False).encode("utf-8")
        self.store.put(self.key(camera.id), data, content_type="application/json")

    def get(self, camera_id: str) -> CameraSpec:
        try:
            raw = self.store.get(self.key(camera_id))
        except ObjectNotFound:
            msg = f"no camera {camera_id!r} in the registry"
            raise CameraNotFound(msg) from None
        return CameraSpec.model_validate_json(raw)

    def exists(self, camera_id: str) -> bool:
        return self.store.exists(self.key(camera_id))

    def delete(self, camera_id: str) -> bool:
        if not self.exists(camera_id):
            return False
        self.store.delete(self.key(camera_id))
        return True

    def list(self) -> list[CameraSpec]:
        """Every valid record, by ID; invalid records are skipped with a warning (never their content)."""
        cameras = []
        for info in self.store.list(self.prefix + "/"):
            if not info.key.endswith(".json"):
                continue
            try:
                cameras.append(CameraSpec.model_validate_json(self.store.get(info.key)))
            except (ValidationError, ValueError, ObjectNotFound) as exc:
                log.warning("skipping invalid camera record %s: %d problem(s)", info.key, _count_errors(exc))
        return sorted(cameras, key=lambda c: c.id)

    def upsert(self, camera: CameraSpec, *, keep_local_fields: bool = True) -> bool:
        """Add or update; with ``keep_local_fields`` an existing record keeps its enabled flag,
        credentials and operator-set fields (used by GB catalogs). True when something changed."""
        try:
            old = self.get(camera.id)
        except CameraNotFound:
            self.put(camera)
            return True
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
        if camera == old:
            return False
        self.put(camera)
        return True


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
