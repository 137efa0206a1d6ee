"""S3 object store (minio SDK): MinIO in production, SeaweedFS locally.

Uses only the plain S3 API (put/get/stat/list/delete/presign), so it runs unchanged
on any S3 implementation. Large uploads are multipart (the SDK splits at 10 MiB).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import urllib3
from minio import Minio
from minio.error import S3Error

from pipeline.config.store import S3Config
from pipeline.store.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    decode_metadata,
    encode_metadata,
    validate_key,
)

log = logging.getLogger(__name__)

_PART_SIZE = 10 * 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "ResourceNotFound", "NotFound"}


def _user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    prefix = "x-amz-meta-"
    return decode_metadata({k[len(prefix) :]: v for k, v in headers.items() if k.lower().startswith(prefix)})


class S3Store(ObjectStore):
    name = "s3"

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=3, backoff_factor=0.3, status_forcelist=(500, 502, 503, 504)),
            maxsize=16,
        )
        self.client = Minio(
            config.endpoint,
            access_key=config.access_key.get_secret_value() if config.access_key else None,
            secret_key=config.secret_key.get_secret_value() if config.secret_key else None,
            secure=config.secure,
            region=config.region,
            http_client=http,
        )
        try:
            if not self.client.bucket_exists(self.bucket):
                if not config.create_bucket:
                    msg = f"bucket {self.bucket!r} does not exist at {config.endpoint}"
                    raise StoreError(msg)
                self.client.make_bucket(self.bucket)
                log.info("created bucket %s at %s", self.bucket, config.endpoint)
        except S3Error as exc:
            msg = f"S3 at {config.endpoint} refused access to bucket {self.bucket!r}: {exc.code}"
            raise StoreError(msg) from exc
        except urllib3.exceptions.HTTPError as exc:
            msg = f"cannot reach S3 at {config.endpoint}: {exc}"
            raise StoreError(msg) from exc

    def _wrap(self, key: str, exc: S3Error) -> StoreError:
        if exc.code in _NOT_FOUND:
            return ObjectNotFound(key)
        return StoreError(f"S3 {exc.code} on {key!r}: {exc.message}")

    def put(
        self,
        key: str,
        data: bytes | BinaryIO | Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        meta: dict[str, Any] = dict(encode_metadata(metadata))
        try:
            if isinstance(data, Path):
                self.client.fput_object(self.bucket, key, str(data), content_type=content_type, metadata=meta)
            elif isinstance(data, bytes | bytearray | memoryview):
                import io

                self.client.put_object(
                    self.bucket, key, io.BytesIO(bytes(data)), len(data), content_type=content_type, metadata=meta
                )
            else:
                self.client.put_object(
                    self.bucket, key, data, -1, part_size=_PART_SIZE, content_type=content_type, metadata=meta
                )
        except S3Error as exc:
            raise self._wrap(key, exc) from exc
        return self.stat(key)

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        validate_key(key)
        response = None
        try:
            if length == 0:
                self.stat(key)
                return b""
            response = self.client.get_object(self.bucket, key, offset=start, length=length or 0)
            return response.read()
        except S3Error as exc:
            if exc.code == "InvalidRange":
                return b""
            raise self._wrap(key, exc) from exc
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def download(self, key: str, path: Path) -> ObjectInfo:
        info = self.stat(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        os.close(fd)
        try:
            self.client.fget_object(self.bucket, key, tmp)
            os.replace(tmp, path)
        except S3Error as exc:
            raise self._wrap(key, exc) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)
        return info

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        try:
            st = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            raise self._wrap(key, exc) from exc
        return ObjectInfo(
            key=key,
            size=int(st.size or 0),
            etag=(st.etag or "").strip('"'),
            content_type=st.content_type or "application/octet-stream",
            last_modified=st.last_modified,
            metadata=_user_metadata(st.metadata or {}),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                yield ObjectInfo(
                    key=obj.object_name,
                    size=int(obj.size or 0),
                    etag=(obj.etag or "").strip('"'),
                    last_modified=obj.last_modified,
                )
        except S3Error as exc:
            raise self._wrap(prefix, exc) from exc

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self.client.remove_object(self.bucket, key)
        except S3Error as exc:
            if exc.code not in _NOT_FOUND:
                raise self._wrap(key, exc) from exc

    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        self.stat(key)
        return self.client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_s))

    def close(self) -> None:
        self.client._http.clear()
