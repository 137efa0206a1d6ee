"""The write spool: durable on-disk queue, write-behind store wrapper, typed S3 errors, degraded readiness.

The remote store is a local folder behind a switch that makes it fail like an unreachable S3 server
(``StoreUnavailable``); the real S3 server going away is covered by tests/integration/test_store_outage.py.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.error import HTTPError

import pytest
import urllib3
from minio.error import S3Error, ServerError

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.runtime.health import HealthServer
from pipeline.runtime.worker import Health, Worker
from pipeline.spool import RetryPolicy, Spool, SpooledStore, SpoolError, SpoolFull, announce, hook, put_then
from pipeline.store.base import ObjectInfo, ObjectNotFound, ObjectStore, StoreError, StoreUnavailable
from pipeline.store.local import LocalStore
from pipeline.store.s3 import store_error
from tests.contract.test_bus_contract import drain


class FlakyStore(ObjectStore):
    """A local folder that answers like an unreachable S3 server while ``down`` is set."""

    name = "s3"

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root)
        self.down = threading.Event()
        self.puts: list[str] = []

    def _check(self, key: str) -> None:
        if self.down.is_set():
            msg = f"S3 unreachable on {key!r}: connection refused"
            raise StoreUnavailable(msg)

    def put(self, key: str, data: bytes | BinaryIO | Path, *, content_type: str = "application/octet-stream",
            metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        self._check(key)
        self.puts.append(key)
        return self.inner.put(key, data, content_type=content_type, metadata=metadata)

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        self._check(key)
        return self.inner.get(key, start=start, length=length)

    def download(self, key: str, path: Path) -> ObjectInfo:
        self._check(key)
        return self.inner.download(key, path)

    def stat(self, key: str) -> ObjectInfo:
        self._check(key)
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._check(prefix)
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._check(key)
        self.inner.delete(key)

    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        return self.inner.presigned_get(key, expires_s)


FAST = RetryPolicy(0.02, 0.1)


class _Refusing(FlakyStore):
    def put(self, key: str, data: bytes | BinaryIO | Path, **kwargs: object) -> ObjectInfo:
        msg = f"S3 AccessDenied on {key!r}"
        raise StoreError(msg)


def _spooled(tmp_path: Path, remote: FlakyStore, **kwargs: object) -> SpooledStore:
    spool = Spool(tmp_path / "spool" / "queue", max_bytes=int(kwargs.pop("max_bytes", 10_000_000)),  # type: ignore[arg-type]
                  max_entries=int(kwargs.pop("max_entries", 1000)))  # type: ignore[arg-type]
    return SpooledStore(remote, spool, retry=FAST, **kwargs)  # type: ignore[arg-type]


def _eventually(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- the durable queue --------------------------------------------------------------------------------------
def test_spool_entries_survive_a_restart_in_order_and_half_written_files_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    spool = Spool(folder, max_bytes=1 << 20, max_entries=10)
    segment = tmp_path / "seg.ts"
    segment.write_bytes(b"ts" * 100)
    spool.add("a/1", b"one", content_type="text/plain", metadata={"camera-id": "c1"})
    spool.add("a/2", segment, move=True)
    spool.add("a/3", None)  # a delete
    spool.add("a/4", b"four", followups=[announce("topic", b"msg", "c1"), hook("h", b"{}")])
    assert not segment.exists(), "a moved file belongs to the spool now"
    (folder / "0000000000000099.data").write_bytes(b"orphan: the crash came before its header")
    (folder / ".tmp-0000000000000100.json").write_bytes(b"{")
    spool.close()

    again = Spool(folder, max_bytes=1 << 20, max_entries=10)
    assert again.recovered == 4
    entries = again.entries()
    assert [(e.key, e.op) for e in entries] == [("a/1", "put"), ("a/2", "put"), ("a/3", "delete"), ("a/4", "put")]
    assert again.data_path(entries[1]).read_bytes() == b"ts" * 100
    assert entries[0].metadata == {"camera-id": "c1"} and entries[0].content_type == "text/plain"
    assert entries[3].followups[0].value == b"msg" and entries[3].followups[1].kind == "hook"
    assert not (folder / "0000000000000099.data").exists() and not (folder / ".tmp-0000000000000100.json").exists()
    assert again.add("a/5", b"x").seq > entries[-1].seq
    again.close()


def test_spool_folder_is_locked_to_one_owner(tmp_path: Path) -> None:
    first = Spool(tmp_path / "q", max_bytes=100, max_entries=10)
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path / "q", max_bytes=100, max_entries=10)
    first.close()
    Spool(tmp_path / "q", max_bytes=100, max_entries=10).close()


def test_spool_is_bounded_but_takes_one_large_entry_when_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", max_bytes=10, max_entries=3)
    spool.add("big", b"x" * 50)  # larger than the limit: an empty spool still takes it (never stuck)
    with pytest.raises(SpoolFull):
        spool.add("small", b"y")
    source = tmp_path / "segment"
    source.write_bytes(b"z" * 20)
    with pytest.raises(SpoolFull):
        spool.add("seg", source, move=True)
    assert source.exists(), "a refused file stays where it was"
    spool.remove(spool.entries()[0])
    for i in range(3):
        spool.add(f"k{i}", b"1")
    with pytest.raises(SpoolFull):
        spool.add("k3", b"1")  # the entry limit
    spool.close()


def test_newer_write_of_a_key_supersedes_the_pending_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", max_bytes=100, max_entries=10)
    spool.add("state/x", b"old")
    spool.add("crop", b"c", followups=[announce("objects", b"m")])
    spool.add("state/x", b"new")
    spool.add("crop", b"c2")  # an entry with follow-ups is never dropped unrun
    assert [(e.key, spool.data_path(e).read_bytes()) for e in spool.entries()] == [
        ("crop", b"c"), ("state/x", b"new"), ("crop", b"c2")]
    spool.close()


# -- the store wrapper --------------------------------------------------------------------------------------
def test_writes_go_direct_while_the_store_answers(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    store = _spooled(tmp_path, remote)
    info = store.put("crops/a.jpg", b"jpeg", content_type="image/jpeg")
    assert info.size == 4 and remote.inner.get("crops/a.jpg") == b"jpeg"
    assert store.pending == 0 and store.degraded is None


def test_outage_spools_in_order_serves_reads_and_stores_everything_when_the_store_returns(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    remote.inner.put("catalog/old", b"stored before")
    store = _spooled(tmp_path, remote)
    store.start()
    remote.down.set()
    store.put("catalog/seg-1", b"rows 1")
    store.put("state/x", b"v1")
    store.put("state/x", b"v2")
    store.delete("catalog/old")
    assert store.pending >= 3 and "store writes failing" in (store.degraded or "")
    # this process reads its own pending writes, the store not needed
    assert store.get("state/x") == b"v2"
    with pytest.raises(ObjectNotFound):
        store.stat("catalog/old")
    time.sleep(0.3)  # the uploader retries meanwhile, with backoff
    assert not remote.inner.exists("catalog/seg-1")

    remote.down.clear()
    assert store.wait_drained(10)
    _eventually(lambda: store.degraded is None)
    assert remote.inner.get("catalog/seg-1") == b"rows 1" and remote.inner.get("state/x") == b"v2"
    assert not remote.inner.exists("catalog/old")
    assert [k for k in remote.puts if k != "catalog/old"][-2:] == ["catalog/seg-1", "state/x"]
    assert store.put("later", b"direct") and remote.inner.get("later") == b"direct"  # direct again
    store.stop()


def test_a_refused_write_is_the_callers_to_see_not_spooled(tmp_path: Path) -> None:
    store = _spooled(tmp_path, _Refusing(tmp_path / "remote"))
    with pytest.raises(StoreError, match="AccessDenied"):
        store.put("auth/users/x.json", b"{}")
    assert store.pending == 0 and store.degraded is None


def test_a_write_outside_the_grant_is_refused_before_the_spool_even_during_an_outage(tmp_path: Path) -> None:
    """`tubeline worker ingest` and `tubeline up` wire the grant check outside the spool: while the store is down
    and writes wait in the spool, one the identity may not make is refused at once (never spooled, where the
    identity would be refused it forever and hold up the queue); the spool's hooks write through the grant too."""
    from pipeline.access import AccessDenied, ScopedStore
    from pipeline.recordings import INDEX_HOOK, SegmentEntry, index_payload, index_segment
    from pipeline.spool import spool_of
    from workers.runner.registry import worker_store

    remote = FlakyStore(tmp_path / "remote")
    config = TubelineConfig.model_validate({"spool": {"dir": str(tmp_path / "spools")}})
    store = worker_store("ingest", config, remote, threading.Event())
    spooled = spool_of(store)
    assert isinstance(store, ScopedStore) and isinstance(spooled, SpooledStore)
    assert isinstance(spooled.hook_store, ScopedStore) and spooled.hook_store.inner is remote
    spooled.register_hook(INDEX_HOOK, index_segment)
    remote.down.set()
    store.put("recordings/cam1/2024-01-01/a.ts", b"v")  # its own prefix: spooled
    with pytest.raises(AccessDenied):
        store.put("auth/users/admin.json", b"{}")
    with pytest.raises(AccessDenied):
        put_then(store, "state/detect/cam1.json", b"{}", [hook(INDEX_HOOK, b"")])
    entry = SegmentEntry(key="recordings/cam1/2024-01-01/b.ts", start="2024-01-01T00:00:00+00:00",
                         end="2024-01-01T00:00:04+00:00", start_pts=0.0, duration_s=4.0, packets=100, keyframes=2,
                         bytes=1, codec="h264", width=16, height=16, after_gap=False)
    assert not put_then(store, entry.key, b"w", [hook(INDEX_HOOK, index_payload("recordings", "cam1", entry))])
    assert spooled.pending == 2, "only the two writes the grant allows wait in the spool"
    spooled.start()
    remote.down.clear()
    assert spooled.wait_drained(10)
    assert remote.inner.exists(entry.key) and remote.inner.exists("recordings/cam1/2024-01-01/a.ts")
    assert remote.inner.exists("recordings/cam1/2024-01-01/index.json")  # written by the hook, through the grant
    assert not remote.inner.exists("auth/users/admin.json")
    spooled.stop()
    spooled.spool.close()


def test_listing_merges_pending_writes(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    for key in ("p/a", "p/b"):
        remote.inner.put(key, b"1")
    store = _spooled(tmp_path, remote)
    remote.down.set()
    store.put("p/c", b"new")
    store.delete("p/a")
    remote.down.clear()  # the listing itself needs the store; the uploader is not running yet
    assert [i.key for i in store.list("p/")] == ["p/b", "p/c"]


def test_followups_run_only_after_the_object_is_stored(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    bus = MemoryBus()
    producer = bus.producer()
    store = _spooled(tmp_path, remote)
    calls: list[tuple[bool, bytes]] = []
    store.register_hook("index", lambda inner, payload: calls.append((inner.exists("rec/seg.ts"), payload)))
    store.bind_producer(producer)
    store.start()
    watch = bus.consumer(["objects"], "watch")
    remote.down.set()
    assert not store.put_then("crops/c.jpg", b"jpeg", [announce("objects", b"crop c", "cam")])
    segment = tmp_path / "seg.ts"
    segment.write_bytes(b"video")
    assert not store.put_then("rec/seg.ts", segment, [hook("index", b"entry")], move=True)
    assert not segment.exists()
    time.sleep(0.2)
    assert drain(watch, 0.2) == [] and calls == [], "nothing announced before its object is stored"
    remote.down.clear()
    assert store.wait_drained(10)
    assert [m.value for m in drain(watch, 0.5)] == [b"crop c"]
    assert calls == [(True, b"entry")]
    # direct: the announcement goes out at once, through the worker's producer
    assert store.put_then("crops/d.jpg", b"jpeg", [announce("objects", b"crop d", "cam")])
    producer.flush()
    assert [m.value for m in drain(watch, 0.5)] == [b"crop d"]
    store.stop()


def test_put_then_on_a_plain_store_writes_and_follows_up_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "plain")
    seen: list[bytes] = []
    segment = tmp_path / "seg"
    segment.write_bytes(b"v")
    assert put_then(store, "r/seg", segment, [hook("index", b"e")], hooks={"index": lambda s, p: seen.append(p)},
                    move=True)
    assert store.get("r/seg") == b"v" and seen == [b"e"] and not segment.exists()


def test_a_restarted_worker_stores_what_the_previous_run_spooled(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    first = _spooled(tmp_path, remote)
    remote.down.set()
    first.put_then("crops/x.jpg", b"x", [announce("objects", b"x")])
    first.spool.close()  # the process dies: nothing was stored
    remote.down.clear()
    bus = MemoryBus()
    second = _spooled(tmp_path, remote)
    assert second.pending == 1
    second.start()
    time.sleep(0.2)
    assert second.pending == 1, "the announcement waits for the worker's producer"
    second.bind_producer(bus.producer())
    assert second.wait_drained(10)
    with bus.consumer(["objects"], "w") as watch:
        assert [m.value for m in drain(watch, 0.5)] == [b"x"]
    second.stop()


def test_a_full_spool_makes_writers_wait_and_says_so(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    stop = threading.Event()
    store = _spooled(tmp_path, remote, max_entries=10, stop_event=stop)
    store.start()
    remote.down.set()
    for i in range(10):
        store.put(f"k/{i}", b"x")
    done = threading.Event()
    threading.Thread(target=lambda: (store.put("k/10", b"x"), done.set()), daemon=True).start()
    _eventually(lambda: "spool full" in (store.degraded or ""))
    assert not done.is_set()
    remote.down.clear()
    assert done.wait(10), "the writer goes on once the store takes the backlog"
    assert store.wait_drained(10) and remote.inner.exists("k/10")
    _eventually(lambda: store.degraded is None)
    remote.down.set()
    for i in range(10):
        store.put(f"m/{i}", b"x")
    stop.set()
    with pytest.raises(SpoolFull):
        store.put("m/10", b"x")
    store.stop()


@pytest.mark.parametrize("wait", [True, False])
def test_reads_wait_for_the_store_or_fail_fast(tmp_path: Path, wait: bool) -> None:
    remote = FlakyStore(tmp_path / "remote")
    remote.inner.put("state/s", b"snapshot")
    stop = threading.Event()
    store = _spooled(tmp_path, remote, wait_reads=wait, stop_event=stop)
    remote.down.set()
    if not wait:
        with pytest.raises(StoreUnavailable):
            store.get("state/s")
        return
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(store.get("state/s")), daemon=True)
    reader.start()
    _eventually(lambda: "reads failing" in (store.degraded or ""))
    remote.down.clear()
    reader.join(10)
    assert got == [b"snapshot"] and store.degraded is None
    remote.down.set()
    stop.set()
    with pytest.raises(StoreUnavailable):
        store.get("state/s")  # a stopping worker does not wait


def test_an_entry_that_keeps_failing_unexpectedly_is_quarantined_not_lost(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import pipeline.spool.store as module

    monkeypatch.setattr(module, "_QUARANTINE_AFTER", 2)
    remote = FlakyStore(tmp_path / "remote")
    store = _spooled(tmp_path, remote)
    remote.down.set()
    store.put_then("x/poison", b"p", [hook("broken", b"{}")])
    store.put("x/fine", b"f")
    store.register_hook("broken", lambda inner, payload: json.loads(b"not json"))
    remote.down.clear()
    store.start()
    assert store.wait_drained(10)
    assert remote.inner.get("x/fine") == b"f"
    assert (tmp_path / "spool" / "quarantine" / "0000000000000001.data").read_bytes() == b"p"
    store.stop()


# -- S3 errors ----------------------------------------------------------------------------------------------
class _Response:
    def __init__(self, status: int) -> None:
        self.status = status


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (S3Error(_Response(404), "NoSuchKey", "gone", "/b/k", "r", "h"), ObjectNotFound),  # type: ignore[arg-type]
        (S3Error(_Response(503), "SlowDown", "busy", "/b/k", "r", "h"), StoreUnavailable),  # type: ignore[arg-type]
        (S3Error(_Response(500), "SomethingNew", "oops", "/b/k", "r", "h"), StoreUnavailable),  # type: ignore[arg-type]
        (S3Error(_Response(403), "AccessDenied", "no", "/b/k", "r", "h"), StoreError),  # type: ignore[arg-type]
        (ServerError("bad gateway", 502), StoreUnavailable),
        (urllib3.exceptions.MaxRetryError(None, "/b/k", "connection refused"), StoreUnavailable),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("reset"), StoreUnavailable),
    ],
)
def test_s3_failures_are_typed(exc: Exception, kind: type) -> None:
    error = store_error("b/k", exc)
    assert type(error) is kind


# -- degraded readiness -------------------------------------------------------------------------------------
class _Idle(Worker):
    name = "idle"

    def step(self) -> None:
        self.stop_event.wait(0.05)


def test_a_worker_whose_store_fails_is_degraded_not_ready_and_recovers(tmp_path: Path) -> None:
    remote = FlakyStore(tmp_path / "remote")
    store = _spooled(tmp_path, remote)
    worker = _Idle(TubelineConfig(), bus=MemoryBus(), store=store)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    server = HealthServer("127.0.0.1", 0, lambda: {"idle": worker.health},
                          lambda: {"idle": worker.degraded_reasons()}).start()

    def ready() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except HTTPError as err:
            return err.code, json.loads(err.read())

    try:
        thread.start()
        _eventually(lambda: worker.health == Health.RUNNING)
        assert ready()[0] == 200
        remote.down.set()
        store.put("crops/x.jpg", b"x")  # spooled: the worker goes on, degraded
        assert worker.health == Health.DEGRADED
        status, doc = ready()
        assert status == 503 and doc["workers"] == {"idle": "degraded"}
        assert "store writes failing" in doc["degraded"]["idle"][0]
        remote.down.clear()
        _eventually(lambda: worker.health == Health.RUNNING)
        assert ready()[0] == 200 and remote.inner.exists("crops/x.jpg")
    finally:
        worker.stop()
        thread.join(10)
        server.stop()
    assert worker.health == Health.STOPPED
