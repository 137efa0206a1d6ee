"""The spool's durable part: an ordered queue of pending object writes in a local folder.

Each entry is two files named by a sequence number: ``{seq}.data`` (the object's bytes; absent for a delete)
and ``{seq}.json`` (the header: operation, key, content type, metadata, follow-ups). The data file is written
to a temporary name, fsynced and renamed first; the header is written the same way last, and the folder is
fsynced, so an entry exists exactly when its header does. A crash at any point leaves either a complete entry
or files that :meth:`Spool.__init__` removes (a data file without header, temporary files).

The folder is locked (``flock``) for the lifetime of the :class:`Spool`: two processes sharing one spool folder
would upload each other's entries twice and race on sequence numbers, so the second one is refused.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from pipeline.store.base import StoreUnavailable, validate_key

log = logging.getLogger(__name__)

_TMP = ".tmp-"
_LOCK = ".lock"
_COPY_CHUNK = 1 << 20


class SpoolError(RuntimeError):
    """The spool folder cannot be used (locked by another process, not writable)."""


class SpoolFull(StoreUnavailable):
    """The spool reached its size or entry limit and the write could not wait any longer."""


@dataclass(frozen=True)
class Followup:
    """Something to do once an entry's object is stored: announce a message, or run a named hook.

    ``kind="announce"``: produce ``value`` to ``topic`` with ``key`` and ``headers`` (the message that tells
    downstream the object exists is sent only after it does). ``kind="hook"``: call the handler registered
    under ``topic`` with ``value`` (JSON bytes), e.g. the recorder's day index update."""

    kind: Literal["announce", "hook"]
    topic: str
    value: bytes
    key: str = ""
    headers: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind, "topic": self.topic, "key": self.key,
            "value": base64.b64encode(self.value).decode("ascii"),
            "headers": [[k, base64.b64encode(v).decode("ascii")] for k, v in self.headers],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> Followup:
        kind = doc["kind"]
        if kind not in ("announce", "hook"):
            msg = f"unknown follow-up kind {kind!r}"
            raise ValueError(msg)
        headers = doc.get("headers") or []
        assert isinstance(headers, list)
        return cls(kind, str(doc["topic"]), base64.b64decode(str(doc["value"])), str(doc.get("key", "")),
                   tuple((str(k), base64.b64decode(str(v))) for k, v in headers))


def announce(topic: str, value: bytes, key: str = "", headers: Sequence[tuple[str, bytes]] = ()) -> Followup:
    return Followup("announce", topic, value, key, tuple(headers))


def hook(name: str, payload: bytes) -> Followup:
    return Followup("hook", name, payload)


@dataclass(frozen=True)
class Entry:
    """One pending write (or delete) in the spool."""

    seq: int
    op: Literal["put", "delete"]
    key: str
    size: int
    content_type: str = "application/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)
    followups: tuple[Followup, ...] = ()
    created: float = 0.0

    def header(self) -> dict[str, object]:
        return {
            "seq": self.seq, "op": self.op, "key": self.key, "size": self.size, "content_type": self.content_type,
            "metadata": dict(self.metadata), "followups": [f.to_json() for f in self.followups],
            "created": self.created,
        }

    @classmethod
    def from_header(cls, doc: Mapping[str, object]) -> Entry:
        op = doc["op"]
        if op not in ("put", "delete"):
            msg = f"unknown spool operation {op!r}"
            raise ValueError(msg)
        metadata = doc.get("metadata") or {}
        followups = doc.get("followups") or []
        assert isinstance(metadata, dict) and isinstance(followups, list)
        return cls(
            seq=int(str(doc["seq"])), op=op, key=validate_key(str(doc["key"])), size=int(str(doc["size"])),
            content_type=str(doc.get("content_type", "application/octet-stream")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            followups=tuple(Followup.from_json(f) for f in followups), created=float(str(doc.get("created", 0.0))),
        )


def _size_of(data: bytes | BinaryIO | Path | None) -> int:
    """Bytes ``data`` will take in the spool, where known before reading it (0 for a stream)."""
    if data is None:
        return 0
    if isinstance(data, Path):
        return data.stat().st_size
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    return 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A bounded, durable FIFO of object writes in ``folder`` (see the module docstring). Thread-safe."""

    def __init__(self, folder: str | Path, *, max_bytes: int, max_entries: int, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.fsync = fsync
        self._lock_file = open(self.folder / _LOCK, "a+")  # noqa: SIM115 - held for the spool's lifetime
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            msg = f"spool folder {self.folder} is in use by another process; give each worker its own spool.dir"
            raise SpoolError(msg) from None
        self._mutex = threading.RLock()
        self._entries: dict[int, Entry] = {}
        self._bytes = 0
        self._next = 1
        self.recovered = self._scan()

    # -- state ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def head(self) -> Entry | None:
        with self._mutex:
            return self._entries[min(self._entries)] if self._entries else None

    def entries(self) -> list[Entry]:
        with self._mutex:
            return [self._entries[s] for s in sorted(self._entries)]

    def latest(self, key: str) -> Entry | None:
        """The newest pending entry for ``key`` (what a reader of this process should see), or None."""
        with self._mutex:
            found = [e for e in self._entries.values() if e.key == key]
            return max(found, key=lambda e: e.seq) if found else None

    def data_path(self, entry: Entry) -> Path:
        return self.folder / f"{entry.seq:016d}.data"

    def _header_path(self, seq: int) -> Path:
        return self.folder / f"{seq:016d}.json"

    def has_room(self, size: int) -> bool:
        """True when an entry of ``size`` bytes fits (an empty spool takes any one entry, however large)."""
        with self._mutex:
            if not self._entries:
                return True
            return len(self._entries) < self.max_entries and self._bytes + size <= self.max_bytes

    # -- adding and removing -------------------------------------------------------------------------
    def add(
        self,
        key: str,
        data: bytes | BinaryIO | Path | None,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        followups: Sequence[Followup] = (),
        move: bool = False,
    ) -> Entry:
        """Append a put (``data`` given) or a delete (``data`` None) of ``key``; durable when it returns.

        ``move`` takes a :class:`Path` over (renamed into the spool when on the same file system) instead of
        copying it. Raises SpoolFull when the entry does not fit (see :meth:`has_room`); concurrent writers
        may overshoot the limit by the entries they add at the same moment."""
        validate_key(key)
        expected = _size_of(data)
        with self._mutex:
            if not self.has_room(expected):  # checked before anything moves: a refused file stays where it was
                msg = f"spool {self.folder} is full ({len(self._entries)} entries, {self._bytes} bytes)"
                raise SpoolFull(msg)
            seq = self._next
            self._next += 1
        data_path = self.folder / f"{seq:016d}.data"
        size = self._write_data(data, data_path, move) if data is not None else 0
        with self._mutex:
            entry = Entry(seq, "put" if data is not None else "delete", key, size, content_type,
                          dict(metadata or {}), tuple(followups), time.time())
            self._write_header(entry)
            superseded = [e for e in self._entries.values() if e.key == key and not e.followups]
            self._entries[seq] = entry
            self._bytes += size
            for old in superseded:  # a newer write of the key makes an older pending one pointless
                self._drop(old)
        return entry

    def _write_data(self, data: bytes | BinaryIO | Path, path: Path, move: bool) -> int:
        tmp = path.with_name(_TMP + path.name)
        if isinstance(data, Path) and move:
            try:
                os.replace(data, tmp)
            except OSError:  # another file system: copy, then remove the original once the copy is durable
                self._copy(data, tmp)
                data.unlink(missing_ok=True)
            else:
                self._sync_file(tmp)
        elif isinstance(data, Path):
            self._copy(data, tmp)
        else:
            with open(tmp, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, _COPY_CHUNK)
                self._sync(out)
        os.replace(tmp, path)
        return path.stat().st_size

    def _copy(self, source: Path, target: Path) -> None:
        with open(source, "rb") as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, _COPY_CHUNK)
            self._sync(out)

    def _sync(self, out: BinaryIO) -> None:
        out.flush()
        if self.fsync:
            os.fsync(out.fileno())

    def _sync_file(self, path: Path) -> None:
        if self.fsync:
            with open(path, "rb") as f:
                os.fsync(f.fileno())

    def _write_header(self, entry: Entry) -> None:
        path = self._header_path(entry.seq)
        tmp = path.with_name(_TMP + path.name)
        with open(tmp, "wb") as out:
            out.write(json.dumps(entry.header(), separators=(",", ":")).encode("utf-8"))
            self._sync(out)
        os.replace(tmp, path)
        if self.fsync:
            _fsync_dir(self.folder)

    def remove(self, entry: Entry) -> None:
        """Forget an entry that was stored (or superseded); its files go."""
        with self._mutex:
            if entry.seq in self._entries:
                self._drop(entry)

    def _drop(self, entry: Entry) -> None:
        self._entries.pop(entry.seq, None)
        self._bytes -= entry.size
        self._header_path(entry.seq).unlink(missing_ok=True)  # header first: no half entry survives a crash
        self.data_path(entry).unlink(missing_ok=True)

    # -- start-up ------------------------------------------------------------------------------------
    def _scan(self) -> int:
        """Load the entries a previous run left; remove incomplete files. Returns how many were found."""
        headers: set[int] = set()
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(_TMP):
                path.unlink(missing_ok=True)
            elif name.endswith(".json") and name[:-5].isdigit():
                try:
                    entry = Entry.from_header(json.loads(path.read_bytes()))
                except (ValueError, KeyError, TypeError, AssertionError) as exc:
                    log.error("spool %s: unreadable entry %s (%s); moved aside", self.folder, name, exc)
                    with contextlib.suppress(OSError):
                        os.replace(path, path.with_name(name + ".bad"))
                    continue
                if entry.op == "put" and not self.data_path(entry).exists():
                    log.error("spool %s: entry %s lost its data file; dropped", self.folder, name)
                    path.unlink(missing_ok=True)
                    continue
                self._entries[entry.seq] = entry
                self._bytes += entry.size
                headers.add(entry.seq)
        for path in self.folder.glob("*.data"):
            if path.name[:-5].isdigit() and int(path.name[:-5]) not in headers:
                path.unlink(missing_ok=True)  # written, but the crash came before its header
        self._next = max(self._entries, default=0) + 1
        if self._entries:
            log.warning("spool %s: %d pending write(s), %.1f MB from a previous run; they will be stored",
                        self.folder, len(self._entries), self._bytes / 1e6)
        return len(self._entries)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())
