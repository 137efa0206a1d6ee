"""An object store that never loses a write: direct when the store answers, spooled to local disk when not.

:class:`SpooledStore` wraps a remote store (S3). A write goes straight to the store while it answers and
nothing is pending; when the store cannot be reached or answers with a server error (``StoreUnavailable``),
the write goes to the :class:`~pipeline.spool.queue.Spool` instead — a local folder, fsynced — and every later write follows it
there, in order, until an uploader thread has stored everything (capped exponential backoff with jitter).
So a write is **durable when** ``put`` **returns**: in the store, or in the spool on this machine's disk.
A write the store refuses (denied, invalid) raises to the caller as it would without the spool; while
entries are pending, the uploader retries whatever the store answers, and a refusal shows in
:attr:`SpooledStore.degraded`. Keys come from stable IDs, so storing a spooled entry again after a crash
overwrites the same object.

Follow-ups (:class:`~pipeline.spool.queue.Followup`) run only once their object is stored: an *announcement*
(the bus message that tells downstream the object exists, e.g. the detect worker's ``objects.v1``) is
produced and flushed, a *hook* (e.g. the recorder's day index) is called with the underlying store.

Reads see this process's pending writes (a pending put is served from the spool, a pending delete hides the
object). A read the store cannot answer either fails at once (``wait_reads=False``: the caller has a
fallback) or waits with backoff until the store answers or the stop event is set.

The spool is bounded (``spool.max_mb``, ``spool.max_entries``): a write that does not fit waits for room
(the worker stalls; upstream buffers or, for a live camera, the recorder drops to the next keyframe) and the
store reports ``spool full``. :attr:`degraded` names what is wrong (store unreachable, reads failing, spool
full); workers report it on ``/readyz`` and it clears once the spool has drained.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from pipeline import metrics
from pipeline.bus.base import BusError
from pipeline.retry import RetryPolicy
from pipeline.spool.queue import Entry, Followup, Spool, SpoolFull
from pipeline.store.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    StoreUnavailable,
    validate_key,
)

if TYPE_CHECKING:
    from pipeline.bus.base import Producer

log = logging.getLogger(__name__)

T = TypeVar("T")
Hook = Callable[[ObjectStore, bytes], None]
"""A follow-up handler: called with the underlying store and the follow-up's payload once the object is stored."""

_QUARANTINE_AFTER = 20  # unexpected (non-store, non-bus) failures of one entry before it is moved aside


class SpooledStore(ObjectStore):
    """See the module docstring. ``stop_event`` ends waits (reads, a full spool) by raising StoreUnavailable."""

    def __init__(
        self,
        inner: ObjectStore,
        spool: Spool,
        *,
        stop_event: threading.Event | None = None,
        wait_reads: bool = True,
        retry: RetryPolicy | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.inner = inner
        self.spool = spool
        self.name = inner.name
        self.stop_event = stop_event or threading.Event()
        self.wait_reads = wait_reads
        self.retry = retry or RetryPolicy()
        self.workdir = workdir or spool.folder.parent / "work"
        # the store hooks get once their object is stored; the worker's grant-checked view of ``inner`` where a
        # ScopedStore sits outside this spool (``workers.runner.registry.worker_store``)
        self.hook_store: ObjectStore = inner
        self._hooks: dict[str, Hook] = {}
        self._producer: Producer | None = None
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[int, int] = {}
        self.stored_later = 0  # entries the uploader stored
        self.spooled = 0  # writes that went to the spool
        self.upload_failures = 0

    # -- wiring ----------------------------------------------------------------------------------------
    def register_hook(self, name: str, handler: Hook) -> None:
        self._hooks[name] = handler
        self._notify()

    def bind_producer(self, producer: Producer | None) -> None:
        """The producer announcements are sent with (the worker's own, so its flush covers them)."""
        self._producer = producer
        self._notify()

    def start(self) -> None:
        """Start the uploader thread (idempotent); entries left by a previous run are stored first."""
        if self._thread is None or not self._thread.is_alive():
            metrics.register_spool(self.spool.folder.parent.name, lambda: float(len(self.spool)))
            self._closing.clear()
            self._thread = threading.Thread(target=self._upload_loop, name=f"spool-{self.spool.folder.parent.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the uploader after its current attempt; pending entries stay for the next start."""
        self._closing.set()
        self._notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.spool.close()
        self.inner.close()

    # -- state -----------------------------------------------------------------------------------------
    @property
    def degraded(self) -> str | None:
        """Why the store is not healthy right now (None when it is)."""
        with self._lock:
            return "; ".join(self._reasons[k] for k in sorted(self._reasons)) or None

    @property
    def pending(self) -> int:
        return len(self.spool)

    def status(self) -> dict[str, object]:
        head = self.spool.head()
        return {
            "pending": len(self.spool), "pending_bytes": self.spool.size_bytes, "spooled": self.spooled,
            "stored_later": self.stored_later, "upload_failures": self.upload_failures,
            "oldest_age_s": round(time.time() - head.created, 1) if head else 0.0, "degraded": self.degraded,
        }

    def _set(self, what: str, reason: str | None) -> None:
        with self._lock:
            before = self._reasons.get(what)
            if reason is None:
                self._reasons.pop(what, None)
            else:
                self._reasons[what] = reason
        if before is None and reason is not None:
            log.warning("store degraded: %s", reason)
        elif before is not None and reason is None:
            log.info("store recovered (%s)", what)

    def wait_drained(self, timeout: float) -> bool:
        """Wait until every spooled entry is stored; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.spool) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not len(self.spool)

    # -- writes ----------------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes | BinaryIO | Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        stored = self._write(key, data, content_type, metadata, (), move=False)
        if stored is not None:
            return stored
        etag = hashlib.md5(bytes(data), usedforsecurity=False).hexdigest() if isinstance(
            data, bytes | bytearray | memoryview) else ""
        size = len(data) if isinstance(data, bytes | bytearray | memoryview) else 0
        return ObjectInfo(key=key, size=size, etag=etag, content_type=content_type, metadata=dict(metadata or {}))

    def put_then(
        self,
        key: str,
        data: bytes | BinaryIO | Path,
        then: Sequence[Followup],
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        move: bool = False,
    ) -> bool:
        """Store ``data`` and run ``then`` once it is stored. True if that happened now, False if spooled.

        ``move`` hands a file over: it is gone from its place when this returns (stored, or in the spool)."""
        stored = self._write(key, data, content_type, metadata, tuple(then), move=move)
        if stored is not None and move and isinstance(data, Path):
            data.unlink(missing_ok=True)
        return stored is not None

    def delete(self, key: str) -> None:
        validate_key(key)
        if not self._direct_allowed():
            self._spool(key, None, "", None, (), move=False)
            return
        try:
            self.inner.delete(key)
        except StoreUnavailable as exc:
            self._fell_back(exc)
            self._spool(key, None, "", None, (), move=False)

    def _direct_allowed(self) -> bool:
        return not len(self.spool) and "write" not in self._reasons

    def _write(
        self, key: str, data: bytes | BinaryIO | Path, content_type: str, metadata: Mapping[str, str] | None,
        then: tuple[Followup, ...], *, move: bool,
    ) -> ObjectInfo | None:
        validate_key(key)
        if self._direct_allowed():
            position = data.tell() if not isinstance(data, bytes | bytearray | memoryview | Path) else None
            try:
                info = self.inner.put(key, data, content_type=content_type, metadata=metadata)
                self._run_followups(then, direct=True)
                return info
            except (StoreUnavailable, BusError) as exc:  # a refusal (denied, invalid) is the caller's to see
                self._fell_back(exc)
                if position is not None:
                    data.seek(position)  # type: ignore[union-attr]
        self._spool(key, data, content_type, metadata, then, move=move)
        return None

    def _fell_back(self, exc: Exception) -> None:
        self._set("write", f"store writes failing, spooling to {self.spool.folder}: {exc}")

    def _spool(
        self, key: str, data: bytes | BinaryIO | Path | None, content_type: str,
        metadata: Mapping[str, str] | None, then: tuple[Followup, ...], *, move: bool,
    ) -> Entry:
        size = data.stat().st_size if isinstance(data, Path) else len(data) if isinstance(
            data, bytes | bytearray | memoryview) else 0
        announced_full = False
        while True:
            if self.spool.has_room(size):
                try:
                    entry = self.spool.add(key, data, content_type=content_type, metadata=metadata,
                                           followups=then, move=move)
                    break
                except SpoolFull:
                    pass
            if not announced_full:
                announced_full = True
                log.error("spool %s is full (%d entries, %.1f MB): writes wait until the store takes them",
                          self.spool.folder, len(self.spool), self.spool.size_bytes / 1e6)
                self._set("full", f"spool full ({len(self.spool)} entries, {self.spool.size_bytes / 1e6:.0f} MB)")
            if self.stop_event.wait(0.2):
                msg = f"spool {self.spool.folder} is full and the worker is stopping"
                raise SpoolFull(msg)
        if announced_full:
            self._set("full", None)
        self.spooled += 1
        self._notify()
        return entry

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _run_followups(self, then: Sequence[Followup], *, direct: bool) -> None:
        """Run hooks and send announcements; on the uploader's path also flush them (the entry goes next)."""
        announced = False
        for followup in then:
            if followup.kind == "hook":
                handler = self._hooks.get(followup.topic)
                if handler is None:
                    msg = f"no handler registered for spool hook {followup.topic!r}"
                    raise StoreUnavailable(msg)
                handler(self.hook_store, followup.value)
            else:
                if self._producer is None:
                    msg = "no producer bound for spool announcements yet"
                    raise StoreUnavailable(msg)
                self._producer.send(followup.topic, followup.value, key=followup.key or None,
                                    headers=list(followup.headers))
                announced = True
        if announced and not direct:
            assert self._producer is not None
            self._producer.flush()

    # -- the uploader ----------------------------------------------------------------------------------
    def _upload_loop(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            entry = self.spool.head()
            if entry is None:
                if "write" in self._reasons:
                    self._set("write", None)
                with self._wake:
                    self._wake.wait(1.0)
                continue
            if self._store_entry(entry):
                attempt = 0
                continue
            attempt += 1
            self._closing.wait(self.retry.delay(attempt - 1))

    def _store_entry(self, entry: Entry) -> bool:
        """Store one entry and run its follow-ups; True when it is done (or was superseded)."""
        try:
            if entry.op == "put":
                self.inner.put(entry.key, self.spool.data_path(entry), content_type=entry.content_type,
                               metadata=entry.metadata)
            else:
                self.inner.delete(entry.key)
            self._run_followups(entry.followups, direct=False)
        except FileNotFoundError:
            if self.spool.latest(entry.key) is entry:
                raise
            return True  # superseded by a newer write while we were on it
        except (StoreError, BusError) as exc:
            self.upload_failures += 1
            self._set("write", f"store writes failing, {len(self.spool)} pending in {self.spool.folder}: {exc}")
            return False
        except Exception:  # a bug or a poisoned entry: keep it, but do not let it block the queue forever
            log.exception("spool: unexpected failure storing %s", entry.key)
            count = self._failures.get(entry.seq, 0) + 1
            self._failures[entry.seq] = count
            if count >= _QUARANTINE_AFTER:
                self._quarantine(entry)
                return True
            return False
        self.spool.remove(entry)
        self._failures.pop(entry.seq, None)
        self.stored_later += 1
        return True

    def _quarantine(self, entry: Entry) -> None:
        target = self.spool.folder.parent / "quarantine"
        target.mkdir(parents=True, exist_ok=True)
        if entry.op == "put":
            shutil.copy2(self.spool.data_path(entry), target / f"{entry.seq:016d}.data")
        (target / f"{entry.seq:016d}.json").write_text(str(entry.header()), encoding="utf-8")
        log.error("spool: %s failed %d times; moved to %s", entry.key, _QUARANTINE_AFTER, target)
        self.spool.remove(entry)

    # -- reads -----------------------------------------------------------------------------------------
    def _read(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                result = fn()
            except StoreUnavailable as exc:
                if not self.wait_reads:
                    raise
                self._set("read", f"store reads failing ({what}): {exc}")
                if self.stop_event.wait(self.retry.delay(attempt)):
                    raise
                attempt += 1
                continue
            if attempt:
                self._set("read", None)
            return result

    def _pending_put(self, key: str) -> Entry | None:
        entry = self.spool.latest(key)
        if entry is not None and entry.op == "delete":
            raise ObjectNotFound(key)
        return entry

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        entry = self._pending_put(key)
        if entry is not None:
            try:
                with open(self.spool.data_path(entry), "rb") as f:
                    f.seek(start)
                    return f.read() if length is None else f.read(length)
            except FileNotFoundError:
                pass  # stored meanwhile
        return self._read(key, lambda: self.inner.get(key, start=start, length=length))

    def download(self, key: str, path: Path) -> ObjectInfo:
        entry = self._pending_put(key)
        if entry is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".part")
                shutil.copyfile(self.spool.data_path(entry), tmp)
                tmp.replace(path)
                return self._info(entry)
            except FileNotFoundError:
                pass
        return self._read(key, lambda: self.inner.download(key, path))

    def stat(self, key: str) -> ObjectInfo:
        entry = self._pending_put(key)
        if entry is not None:
            return self._info(entry)
        return self._read(key, lambda: self.inner.stat(key))

    @staticmethod
    def _info(entry: Entry) -> ObjectInfo:
        return ObjectInfo(key=entry.key, size=entry.size, content_type=entry.content_type, metadata=entry.metadata)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found = {i.key: i for i in self._read(prefix or "/", lambda: list(self.inner.list(prefix)))}
        for entry in self.spool.entries():
            if not entry.key.startswith(prefix):
                continue
            if entry.op == "delete":
                found.pop(entry.key, None)
            else:
                found[entry.key] = self._info(entry)
        for key in sorted(found):
            yield found[key]

    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        return self.inner.presigned_get(key, expires_s)


def spool_of(store: ObjectStore) -> SpooledStore | None:
    """The spool ``store`` writes through: ``store`` itself, or the one beneath the wrappers around it (a worker's
    :class:`pipeline.access.ScopedStore` sits outside its spool), else None."""
    for _ in range(8):
        if isinstance(store, SpooledStore):
            return store
        inner = getattr(store, "inner", None)
        if not isinstance(inner, ObjectStore):
            return None
        store = inner
    return None


def put_then(
    store: ObjectStore,
    key: str,
    data: bytes | BinaryIO | Path,
    then: Sequence[Followup],
    *,
    producer: Producer | None = None,
    hooks: Mapping[str, Hook] | None = None,
    content_type: str = "application/octet-stream",
    metadata: Mapping[str, str] | None = None,
    move: bool = False,
) -> bool:
    """:meth:`SpooledStore.put_then` on any store: a plain store writes now (errors propagate) and runs
    ``then`` with ``producer`` and ``hooks``. True when stored now, False when spooled."""
    if isinstance(store, SpooledStore):
        return store.put_then(key, data, then, content_type=content_type, metadata=metadata, move=move)
    wrapped = getattr(type(store), "put_then", None)
    if callable(wrapped):  # a wrapper that checks the write before handing it on (pipeline.access.ScopedStore)
        return bool(wrapped(store, key, data, then, producer=producer, hooks=hooks, content_type=content_type,
                            metadata=metadata, move=move))
    store.put(key, data, content_type=content_type, metadata=metadata)
    for followup in then:
        if followup.kind == "hook":
            handler = (hooks or {}).get(followup.topic)
            if handler is None:
                msg = f"no handler for hook {followup.topic!r}"
                raise KeyError(msg)
            handler(store, followup.value)
        elif producer is not None:
            producer.send(followup.topic, followup.value, key=followup.key or None, headers=list(followup.headers))
        else:
            msg = "an announcement needs a producer"
            raise ValueError(msg)
    if move and isinstance(data, Path):
        data.unlink(missing_ok=True)
    return True
