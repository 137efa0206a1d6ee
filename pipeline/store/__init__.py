"""Object store: one interface (``base``), a local-folder backend and an S3 backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.store.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    StoreUnavailable,
    join_key,
    validate_key,
)

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig


def open_store(config: TubelineConfig) -> ObjectStore:
    """The store the configuration names. The S3 client is imported only when used."""
    if config.store.backend == "s3":
        from pipeline.store.s3 import S3Store

        return S3Store(config.store.s3)
    from pipeline.store.local import LocalStore

    return LocalStore(config.store.local.root)


__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StoreError",
    "StoreUnavailable",
    "join_key",
    "open_store",
    "validate_key",
]
