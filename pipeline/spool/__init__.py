"""The write spool: object writes a remote store cannot take now wait on local disk and are stored later.

``queue`` is the durable folder (:class:`Spool`), ``store`` the :class:`SpooledStore` wrapper workers write
through. :func:`spooled_store` wraps a worker's store according to the ``spool`` configuration section.
"""

from __future__ import annotations

import threading

from pipeline.config.spool import SpoolConfig
from pipeline.retry import RetryPolicy
from pipeline.spool.queue import Entry, Followup, Spool, SpoolError, SpoolFull, announce, hook
from pipeline.spool.store import Hook, SpooledStore, put_then, spool_of
from pipeline.store.base import ObjectStore


def spooled_store(
    store: ObjectStore,
    settings: SpoolConfig,
    worker: str,
    *,
    stop_event: threading.Event | None = None,
    wait_reads: bool = True,
) -> ObjectStore:
    """``store`` behind a spool in ``{settings.dir}/{worker}/`` — or ``store`` itself when spooling is off,
    the store is already spooled, or it is a local folder (spooling to the same disk would gain nothing)."""
    if not settings.enabled or isinstance(store, SpooledStore) or store.name == "local":
        return store
    root = settings.dir / worker
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # spooled recordings and crops are evidence at rest: the worker's user only
    spool = Spool(root / "queue", max_bytes=settings.max_mb * 1_000_000, max_entries=settings.max_entries,
                  fsync=settings.fsync)
    return SpooledStore(store, spool, stop_event=stop_event, wait_reads=wait_reads,
                        retry=RetryPolicy(settings.retry_initial_s, settings.retry_max_s), workdir=root / "work")


__all__ = [
    "Entry",
    "Followup",
    "Hook",
    "RetryPolicy",
    "Spool",
    "SpoolError",
    "SpoolFull",
    "SpooledStore",
    "announce",
    "hook",
    "put_then",
    "spool_of",
    "spooled_store",
]
