"""Local-folder object store: the embedded default.

Objects live at ``<root>/<key>``; content type and metadata in a sidecar under
``<root>/.meta/<key>.json``. Writes go to a temporary file in the same folder and
are renamed into place, so readers never see a partial object and a retried write
simply replaces it. "Presigned" URLs are ``file://`` URIs: they work for a process
on the same machine (the API serves objects itself when the store is local).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pipeline.store.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    decode_metadata,
    encode_metadata,
    validate_key,
)

log = logging.getLogger(__name__)

_META = ".meta"
_TMP_PREFIX = ".tmp-"


class LocalStore(ObjectStore):
    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META / (validate_key(key) + ".json")

    def put(
        self,
        key: str,
        data: bytes | BinaryIO | Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        path = self._path(key)
        meta = encode_metadata(metadata)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.md5(usedforsecurity=False)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                    digest.update(data)
                else:
                    source = open(data, "rb") if isinstance(data, Path) else data  # noqa: SIM115
                    try:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                            digest.update(chunk)
                    finally:
                        if isinstance(data, Path):
                            source.close()
                out.flush()
                os.fsync(out.fileno())
            etag = digest.hexdigest()
            self._write_meta(key, {"content_type": content_type, "metadata": meta, "etag": etag})
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return self.stat(key)

    def _write_meta(self, key: str, doc: dict[str, object]) -> None:
        meta_path = self._meta_path(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=meta_path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out)
        os.replace(tmp_name, meta_path)

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read() if length is None else f.read(length)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def download(self, key: str, path: Path) -> ObjectInfo:
        info = self.stat(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        shutil.copyfile(self._path(key), tmp)
        os.replace(tmp, path)
        return info

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        if not path.is_file():
            raise ObjectNotFound(key)
        try:
            doc = json.loads(self._meta_path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = {}
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=str(doc.get("etag", "")),
            content_type=str(doc.get("content_type", "application/octet-stream")),
            last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            metadata=decode_metadata(doc.get("metadata", {})),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        keys = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == _META or rel_dir.startswith(_META + os.sep):
                dirnames[:] = []
                continue
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            try:
                yield self.stat(key)
            except ObjectNotFound:
                continue  # deleted while listing

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        self.stat(key)
        return self._path(key).as_uri()
