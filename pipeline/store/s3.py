"""S3 object store (minio SDK): MinIO in production, SeaweedFS locally.

Uses only the plain S3 API (put/get/stat/list/delete/presign), so it runs unchanged
on any S3 implementation. Large uploads are multipart (the SDK splits at 10 MiB).

Failures are typed: a missing key is :class:`ObjectNotFound`; a server that cannot be
reached, times out or answers with a 5xx/throttling error is :class:`StoreUnavailable`
(retry later — :mod:`pipeline.spool` does); anything else (denied, bad request) is
:class:`StoreError`. Opening the store does not need the server: the bucket is checked
(and created, when allowed) on first use and again after a failure, and a bucket that
another worker created at the same moment counts as created.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from pipeline.config.store import S3Config
from pipeline.store.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    StoreUnavailable,
    decode_metadata,
    encode_metadata,
    validate_key,
)

log = logging.getLogger(__name__)

_PART_SIZE = 10 * 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "ResourceNotFound", "NotFound"}
# Server-side conditions that pass: worth a retry, never a reason to drop data.
_TRANSIENT = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
              "OperationAborted", "ServerBusy", "XMinioServerNotInitialized"}
_CREATED_ELSEWHERE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def _user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    prefix = "x-amz-meta-"
    return decode_metadata({k[len(prefix) :]: v for k, v in headers.items() if k.lower().startswith(prefix)})


def store_error(key: str, exc: Exception) -> StoreError:
    """The store error an SDK or transport exception stands for (see the module docstring)."""
    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND:
            return ObjectNotFound(key)
        if exc.code in _TRANSIENT or (exc.response is not None and exc.response.status >= 500):
            return StoreUnavailable(f"S3 {exc.code} on {key!r}: {exc.message}")
        return StoreError(f"S3 {exc.code} on {key!r}: {exc.message}")
    if isinstance(exc, ServerError | InvalidResponseError):
        return StoreUnavailable(f"S3 server error on {key!r}: {exc}")
    return StoreUnavailable(f"S3 unreachable on {key!r}: {exc}")


_SDK_ERRORS = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class S3Store(ObjectStore):
    name = "s3"

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=config.read_timeout_s),
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
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        try:
            self.ensure_bucket()
        except StoreUnavailable as exc:
            # Start anyway: the first operation checks again (workers ride out an S3 outage at start-up).
            log.warning("S3 at %s is not reachable yet (%s); the bucket is checked on first use", config.endpoint, exc)

    def ensure_bucket(self) -> None:
        """Check (and, when allowed, create) the bucket once; race-free when several workers start together.

        Raises StoreUnavailable while S3 cannot be reached and StoreError when the bucket is missing and may
        not be created, or access to it is refused."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                if not self.client.bucket_exists(self.bucket):
                    if not self.config.create_bucket:
                        msg = f"bucket {self.bucket!r} does not exist at {self.config.endpoint}"
                        raise StoreError(msg)
                    self._make_bucket()
            except _SDK_ERRORS as exc:
                error = store_error(self.bucket, exc)
                if isinstance(error, StoreUnavailable):
                    raise error from exc
                msg = f"S3 at {self.config.endpoint} refused access to bucket {self.bucket!r}: {error}"
                raise StoreError(msg) from exc
            self._bucket_ready = True

    def _make_bucket(self) -> None:
        try:
            self.client.make_bucket(self.bucket)
            log.info("created bucket %s at %s", self.bucket, self.config.endpoint)
        except S3Error as exc:
            if exc.code not in _CREATED_ELSEWHERE:
                raise
            # Another worker created it between our check and our request: that is what we wanted.
            log.info("bucket %s was created by another client at the same time (%s)", self.bucket, exc.code)
            if exc.code == "BucketAlreadyExists" and not self.client.bucket_exists(self.bucket):
                raise

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Map SDK and transport exceptions to the store's error types."""
        self.ensure_bucket()
        try:
            yield
        except _SDK_ERRORS as exc:
            if isinstance(exc, S3Error | ServerError) and getattr(exc, "code", "") == "NoSuchBucket":
                self._bucket_ready = False  # deleted under us: check (and create) again next time
            raise store_error(key, exc) from exc

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
        with self._errors(key):
            if isinstance(data, Path):
                self.client.fput_object(self.bucket, key, str(data), content_type=content_type, metadata=meta)
            elif isinstance(data, bytes | bytearray | memoryview):
                self.client.put_object(
                    self.bucket, key, io.BytesIO(bytes(data)), len(data), content_type=content_type, metadata=meta
                )
            else:
                self.client.put_object(
                    self.bucket, key, data, -1, part_size=_PART_SIZE, content_type=content_type, metadata=meta
                )
        return self.stat(key)

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        validate_key(key)
        if length == 0:
            self.stat(key)
            return b""
        response = None
        with self._errors(key):
            try:
                response = self.client.get_object(self.bucket, key, offset=start, length=length or 0)
                return response.read()
            except S3Error as exc:
                if exc.code == "InvalidRange":
                    return b""
                raise
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
            with self._errors(key):
                self.client.fget_object(self.bucket, key, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return info

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._errors(key):
            st = self.client.stat_object(self.bucket, key)
        return ObjectInfo(
            key=key,
            size=int(st.size or 0),
            etag=(st.etag or "").strip('"'),
            content_type=st.content_type or "application/octet-stream",
            last_modified=st.last_modified,
            metadata=_user_metadata(st.metadata or {}),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._errors(prefix):
            for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                yield ObjectInfo(
                    key=obj.object_name,
                    size=int(obj.size or 0),
                    etag=(obj.etag or "").strip('"'),
                    last_modified=obj.last_modified,
                )

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            with self._errors(key):
                self.client.remove_object(self.bucket, key)
        except ObjectNotFound:
            pass

    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        self.stat(key)
        return self.client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_s))

    def close(self) -> None:
        self.client._http.clear()
