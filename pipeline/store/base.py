"""The object-store contract every backend implements (S3 API or a local folder).

Keys are ``/``-separated paths built from stable IDs (camera, date, track, sequence),
never from random names, so a retried write overwrites the same object instead of
adding a duplicate. Writes are atomic per object: a reader sees the old object or
the new one, never a partial one.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.=+/@:\u0080-\uffff]+$")


class StoreError(RuntimeError):
    """The store backend failed (unreachable, denied, corrupt)."""


class ObjectNotFound(StoreError, KeyError):
    """No object under the key."""


class StoreUnavailable(StoreError):
    """The store could not be reached, timed out or answered with a server error: retry later.

    Callers that must not lose a write hand it to a spool (:mod:`pipeline.spool`) instead of failing."""


def validate_key(key: str) -> str:
    """Reject keys that are empty, absolute, contain ``..`` segments or odd characters."""
    if not key or key.startswith("/") or key.endswith("/"):
        msg = f"invalid object key {key!r}: must be a relative path without a trailing slash"
        raise ValueError(msg)
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        msg = f"invalid object key {key!r}: empty, '.' or '..' segment"
        raise ValueError(msg)
    if not _KEY_RE.match(key):
        msg = f"invalid object key {key!r}: only letters, digits and _-.=+/@: are allowed"
        raise ValueError(msg)
    return key


def join_key(*parts: str) -> str:
    """Join key segments with ``/`` and validate the result."""
    return validate_key("/".join(p.strip("/") for p in parts if p))


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""
    content_type: str = "application/octet-stream"
    last_modified: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore(abc.ABC):
    """Put/get/stat/list/delete/presign over one bucket (or folder)."""

    name: str

    @abc.abstractmethod
    def put(
        self,
        key: str,
        data: bytes | BinaryIO | Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (bytes, a readable binary file or a path) under ``key``, replacing any old object."""

    @abc.abstractmethod
    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        """The object's bytes, or ``length`` bytes from ``start``. Raises ObjectNotFound."""

    @abc.abstractmethod
    def download(self, key: str, path: Path) -> ObjectInfo:
        """Write the object to ``path`` (streamed, atomic rename)."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, etag, content type and metadata. Raises ObjectNotFound."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abc.abstractmethod
    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        """A URL that fetches the object with a plain GET, valid for ``expires_s`` seconds."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def close(self) -> None:
        """Release connections."""


def encode_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lower-case keys and percent-encode values so any text survives S3's ASCII-only headers."""
    from urllib.parse import quote

    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        k = str(key).lower()
        if not re.fullmatch(r"[a-z0-9-]{1,64}", k):
            msg = f"invalid metadata key {key!r}: use letters, digits and '-'"
            raise ValueError(msg)
        out[k] = quote(str(value), safe=" -_.:/@+=,;")
    return out


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    from urllib.parse import unquote

    return {k.lower(): unquote(v) for k, v in metadata.items()}
