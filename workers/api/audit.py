"""The append-only, hash-chained audit log, kept in the object store.

Every search, view and export through the API (and every login, refusal and error) appends one
entry: who, when (UTC), action, parameters, case reference, outcome, result count, exported keys
and client address.

Layout::

    audit/chains/{writer}/{seq:012d}.json   one entry; seq 0, 1, 2, ... per writer, no gaps
    audit/heads/{writer}.json               the writer's latest (seq, hash), rewritten after each entry
    audit/queries/{sha256}.{ext}            query images of face searches, referenced by their entry

**Concurrency: one chain per writer.** Each API process appends to a chain of its own, named
``{start time}-{host}-{pid}-{random}``, so two replicas never write the same key and no
conditional create is needed (the store contract has none, and not every S3 server honours
``If-None-Match``). Inside a process a lock serialises appends. A restarted process opens a new
chain; the log is the set of chains, ordered by time when read.

**Chaining.** An entry carries its writer and ``seq``, the SHA-256 ``prev`` of the entry before it
in its chain (64 zeros for seq 0) and its own ``hash``: SHA-256 of the entry's canonical JSON
(sorted keys, no spaces, UTF-8) without the ``hash`` field. The object's bytes must *be* that
canonical JSON with the hash, so a changed byte anywhere fails the check. Each chain begins with an
``audit.open`` entry, writes an ``audit.anchor`` entry every ``anchor_every`` entries and an
``audit.close`` entry on shutdown; these record the heads of every other chain seen at that moment,
so removing another chain's tail or the whole chain breaks a reference held elsewhere.

:func:`verify` finds: an edited entry (hash or canonical-bytes mismatch), a reordered or replaced
entry (``seq``/``prev`` mismatch), a missing entry (a gap in ``seq``), a truncated chain (its head
record or another chain's anchor names a later entry) and a deleted chain (its head record or an
anchor still names it). What it cannot find on its own: someone with write access who deletes a
chain's newest entries *and* rewrites its head record, before any other chain anchored them. Against
that, copy the heads ``tubeline audit verify`` prints to a system the store's administrators cannot
write (``--expect`` checks them later).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

GENESIS = "0" * 64
VERSION = 1
OPEN, ANCHOR, CLOSE = "audit.open", "audit.anchor", "audit.close"
_ENTRY_RE = re.compile(r"^([A-Za-z0-9_.-]+)/(\d{12})\.json$")


def canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def new_writer_id() -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{host}-{os.getpid()}-{secrets.token_hex(2)}"


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class AuditLog:
    """Appends entries to this process's chain. Thread-safe; raises the store's error when a write fails."""

    def __init__(
        self, store: ObjectStore, *, prefix: str = "audit", writer_id: str | None = None, anchor_every: int = 100
    ) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.writer = writer_id or new_writer_id()
        self.anchor_every = anchor_every
        self._lock = threading.Lock()
        self._seq = -1
        self._prev = GENESIS
        self._count = 0
        self._closed = False

    def chain_key(self, seq: int, writer: str | None = None) -> str:
        return f"{self.prefix}/chains/{writer or self.writer}/{seq:012d}.json"

    def head_key(self, writer: str | None = None) -> str:
        return f"{self.prefix}/heads/{writer or self.writer}.json"

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Write one entry (``event`` holds action, user, params, ...); returns it with writer, seq and hash."""
        with self._lock:
            if self._seq < 0:
                self._write({"action": OPEN, "heads": self._other_heads()})
            entry = self._write(dict(event))
            self._count += 1
            if self._count % self.anchor_every == 0:
                self._write({"action": ANCHOR, "heads": self._other_heads()})
            return entry

    def close(self) -> None:
        """Write the closing entry (only when the chain was opened)."""
        with self._lock:
            if self._seq >= 0 and not self._closed:
                self._write({"action": CLOSE, "heads": self._other_heads()})
                self._closed = True

    def store_query_image(self, data: bytes, suffix: str) -> str:
        """Keep a face-search query image as evidence; returns its key (content-addressed)."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"{self.prefix}/queries/{digest}{suffix}"
        if not self.store.exists(key):
            self.store.put(key, data, content_type="image/jpeg" if suffix == ".jpg" else "application/octet-stream")
        return key

    def _write(self, event: dict[str, Any]) -> dict[str, Any]:
        seq = self._seq + 1
        entry: dict[str, Any] = {"v": VERSION, "writer": self.writer, "seq": seq, "prev": self._prev,
                                 "ts": event.pop("ts", None) or utc_stamp()}
        entry.update(event)
        entry["hash"] = entry_hash(entry)
        self.store.put(self.chain_key(seq), canonical(entry), content_type="application/json")
        self._seq, self._prev = seq, entry["hash"]
        head = {"writer": self.writer, "seq": seq, "hash": entry["hash"], "ts": entry["ts"]}
        self.store.put(self.head_key(), canonical(head), content_type="application/json")
        return entry

    def _other_heads(self) -> dict[str, dict[str, Any]]:
        heads = {}
        for writer, head in read_heads(self.store, self.prefix).items():
            if writer != self.writer:
                heads[writer] = {"seq": head["seq"], "hash": head["hash"]}
        return heads


# -- reading --------------------------------------------------------------------------------------
def read_heads(store: ObjectStore, prefix: str = "audit") -> dict[str, dict[str, Any]]:
    """Each writer's head record (writer -> {seq, hash, ts}); unreadable records are skipped."""
    heads: dict[str, dict[str, Any]] = {}
    base = f"{prefix}/heads/"
    for info in store.list(base):
        name = info.key[len(base):]
        if not name.endswith(".json"):
            continue
        try:
            doc = json.loads(store.get(info.key))
            heads[name[: -len(".json")]] = {"seq": int(doc["seq"]), "hash": str(doc["hash"]), "ts": doc.get("ts")}
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            log.warning("unreadable audit head record %s", info.key)
    return heads


def read_entry(store: ObjectStore, writer: str, seq: int, prefix: str = "audit") -> dict[str, Any] | None:
    try:
        return json.loads(store.get(f"{prefix}/chains/{writer}/{seq:012d}.json"))
    except (ObjectNotFound, ValueError):
        return None


def tail(
    store: ObjectStore,
    limit: int = 50,
    *,
    prefix: str = "audit",
    user: str | None = None,
    action: str | None = None,
    include_internal: bool = False,
    max_scan: int = 20_000,
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries across all chains (filtered), oldest first; reads back from each head."""
    found: list[dict[str, Any]] = []
    scanned = 0
    for writer, head in read_heads(store, prefix).items():
        picked = 0
        seq = head["seq"] + 1
        while seq > 0 and picked < limit and scanned < max_scan:
            seq -= 1
            scanned += 1
            entry = read_entry(store, writer, seq, prefix)
            if entry is None or not _wanted(entry, user, action, include_internal):
                continue
            found.append(entry)
            picked += 1
    found.sort(key=lambda e: (str(e.get("ts", "")), e.get("writer", ""), e.get("seq", 0)))
    return found[-limit:]


def _wanted(entry: Mapping[str, Any], user: str | None, action: str | None, internal: bool) -> bool:
    name = str(entry.get("action", ""))
    if not internal and name in (OPEN, ANCHOR, CLOSE):
        return False
    if user is not None and entry.get("user") != user:
        return False
    return action is None or name == action or name.startswith(action + ".")


# -- verification ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass
class VerifyReport:
    entries: int = 0
    chains: dict[str, tuple[int, str]] = field(default_factory=dict)  # writer -> (last seq, last hash)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _chain_keys(store: ObjectStore, prefix: str, report: VerifyReport) -> dict[str, dict[int, str]]:
    chains: dict[str, dict[int, str]] = {}
    base = f"{prefix}/chains/"
    for info in store.list(base):
        match = _ENTRY_RE.fullmatch(info.key[len(base):])
        if match is None:
            report.problems.append(Problem(info.key, "unexpected object in the audit chains"))
            continue
        chains.setdefault(match.group(1), {})[int(match.group(2))] = info.key
    return chains


def _check_entry(raw: bytes, key: str, writer: str, seq: int, prev: str) -> tuple[dict[str, Any] | None, str]:
    """(entry, problem message or '')."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None, "not valid JSON (edited or truncated)"
    if not isinstance(entry, dict):
        return None, "not an audit entry"
    if canonical(entry) != raw:
        return entry, "bytes differ from the entry's canonical form (edited)"
    if entry.get("hash") != entry_hash(entry):
        return entry, "content does not match its hash (edited)"
    if entry.get("writer") != writer or entry.get("seq") != seq:
        return entry, f"entry says {entry.get('writer')}/{entry.get('seq')} (moved or reordered)"
    if entry.get("prev") != prev:
        return entry, "prev does not match the hash of the entry before it (reordered, replaced or inserted)"
    return entry, ""


def _verify_chain(store: ObjectStore, writer: str, keys: Mapping[int, str], report: VerifyReport,
                  anchors: list[tuple[str, Mapping[str, Any]]]) -> dict[int, str]:
    hashes: dict[int, str] = {}
    prev = GENESIS
    for expected, seq in enumerate(sorted(keys)):
        key = keys[seq]
        if seq != expected:
            report.problems.append(Problem(key, f"entries {expected}..{seq - 1} of chain {writer} are missing"))
            return hashes
        try:
            raw = store.get(key)
        except ObjectNotFound:
            report.problems.append(Problem(key, "listed but unreadable (deleted)"))
            return hashes
        entry, problem = _check_entry(raw, key, writer, seq, prev)
        if problem:
            report.problems.append(Problem(key, problem))
            return hashes
        assert entry is not None
        report.entries += 1
        hashes[seq] = prev = entry["hash"]
        if entry.get("action") in (OPEN, ANCHOR, CLOSE) and isinstance(entry.get("heads"), dict):
            anchors.append((key, entry["heads"]))
    if hashes:
        last = max(hashes)
        report.chains[writer] = (last, hashes[last])
    return hashes


def _check_reference(ref_key: str, writer: str, head: Any, hashes: Mapping[str, Mapping[int, str]],
                     what: str) -> Problem | None:
    try:
        seq, digest = int(head["seq"]), str(head["hash"])
    except (KeyError, TypeError, ValueError):
        return Problem(ref_key, f"malformed {what} for chain {writer}")
    chain = hashes.get(writer)
    if chain is None:
        return Problem(ref_key, f"{what} names chain {writer}, which is gone (deleted)")
    if seq not in chain:
        return Problem(ref_key, f"{what} names entry {writer}/{seq}, which is missing (chain truncated)")
    if chain[seq] != digest:
        return Problem(ref_key, f"{what} names entry {writer}/{seq} with another hash (edited)")
    return None


def verify(store: ObjectStore, prefix: str = "audit", expect: Iterable[tuple[str, int, str]] = ()) -> VerifyReport:
    """Check every chain, head record and anchor; ``expect`` adds externally kept (writer, seq, hash) heads."""
    report = VerifyReport()
    chains = _chain_keys(store, prefix, report)
    anchors: list[tuple[str, Mapping[str, Any]]] = []
    hashes = {writer: _verify_chain(store, writer, keys, report, anchors) for writer, keys in sorted(chains.items())}
    checks: list[tuple[str, str, Any, str]] = []
    for writer, head in sorted(read_heads(store, prefix).items()):
        checks.append((f"{prefix}/heads/{writer}.json", writer, head, "head record"))
    for key, heads in anchors:
        checks.extend((key, writer, head, "anchor") for writer, head in sorted(heads.items()))
    for writer, seq, digest in expect:
        checks.append(("--expect", writer, {"seq": seq, "hash": digest}, "expected head"))
    for ref_key, writer, head, what in checks:
        problem = _check_reference(ref_key, writer, head, hashes, what)
        if problem is not None and problem not in report.problems:
            report.problems.append(problem)
    return report


def iter_entries(store: ObjectStore, prefix: str = "audit") -> Iterator[dict[str, Any]]:
    """Every readable entry, chain by chain, in sequence order (for exports and tests)."""
    report = VerifyReport()
    for writer, keys in sorted(_chain_keys(store, prefix, report).items()):
        for seq in sorted(keys):
            entry = read_entry(store, writer, seq, prefix)
            if entry is not None:
                yield entry
